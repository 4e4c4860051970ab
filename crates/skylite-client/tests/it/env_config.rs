//! Configuration from the environment and a `.env` file: which variables win (process
//! environment over the file; SKYLITE_* over TURSO_* over LIBSQL_*; a token only from the
//! URL's own family, or SKYLITE_AUTH_TOKEN), and a client connected from a real `.env` file.

use crate::common;

use std::collections::HashMap;
use std::io::Write;

use skylite_client::{Config, Error};

fn dotenv(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn precedence_of_variables_and_sources() {
    let file = dotenv(
        "# a Turso user's .env\nTURSO_DATABASE_URL=\"libsql://db.example.com\"\nTURSO_AUTH_TOKEN='turso-token'\nLIBSQL_URL=http://libsql:8080\nLIBSQL_AUTH_TOKEN=libsql-token\n",
    );
    let c = Config::from_env_with(env_of(&[]), Some(file.path())).unwrap();
    assert_eq!(c.url, "libsql://db.example.com");
    assert_eq!(c.auth_token.as_deref(), Some("turso-token"));
    // The process environment wins over the file, variable by variable.
    let c = Config::from_env_with(
        env_of(&[("TURSO_AUTH_TOKEN", "from-env")]),
        Some(file.path()),
    )
    .unwrap();
    assert_eq!(
        (c.url.as_str(), c.auth_token.as_deref()),
        ("libsql://db.example.com", Some("from-env"))
    );
    // SKYLITE_URL beats the others; its token is SKYLITE_AUTH_TOKEN, never a Turso token.
    let c = Config::from_env_with(
        env_of(&[("SKYLITE_URL", "http://mine:8080")]),
        Some(file.path()),
    )
    .unwrap();
    assert_eq!(
        (c.url.as_str(), c.auth_token.as_deref()),
        ("http://mine:8080", None)
    );
    let c = Config::from_env_with(
        env_of(&[
            ("SKYLITE_URL", "http://mine:8080"),
            ("SKYLITE_AUTH_TOKEN", "mine"),
            ("SKYLITE_CA_FILE", "/ca.pem"),
        ]),
        Some(file.path()),
    )
    .unwrap();
    assert_eq!(c.auth_token.as_deref(), Some("mine"));
    assert_eq!(c.ca_file.as_deref(), Some(std::path::Path::new("/ca.pem")));
    // LIBSQL_* last; SKYLITE_AUTH_TOKEN fills in a family without a token.
    let c = Config::from_env_with(
        env_of(&[("LIBSQL_URL", "http://l:1"), ("SKYLITE_AUTH_TOKEN", "sky")]),
        None,
    )
    .unwrap();
    assert_eq!(
        (c.url.as_str(), c.auth_token.as_deref()),
        ("http://l:1", Some("sky"))
    );
    // Nothing set: a clear error; a missing .env is not an error by itself.
    let e = Config::from_env_with(env_of(&[]), Some(std::path::Path::new("/nonexistent/.env")))
        .unwrap_err();
    assert!(
        matches!(e, Error::Config(ref m) if m.contains("SKYLITE_URL")),
        "{e}"
    );
    assert!(Config::from_env_file("/nonexistent/.env").is_err());
    // A malformed file names itself.
    let bad = dotenv("SKYLITE_URL\n");
    let e = Config::from_env_with(env_of(&[]), Some(bad.path())).unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
}

#[test]
fn a_client_connects_from_a_dotenv_file_and_the_process_env_wins() {
    let s = common::server();
    let file = dotenv(&format!(
        "export SKYLITE_URL={}\nSKYLITE_AUTH_TOKEN=\"{}\" # the app token\n",
        s.url, s.token
    ));
    // Only this test in this binary touches the process environment.
    for k in [
        "SKYLITE_URL",
        "SKYLITE_AUTH_TOKEN",
        "TURSO_DATABASE_URL",
        "LIBSQL_URL",
    ] {
        std::env::remove_var(k);
    }
    let db = skylite_client::blocking::Client::open(Config::from_env_file(file.path()).unwrap())
        .unwrap();
    let r = db.execute("SELECT 'from .env'", ()).unwrap();
    assert_eq!(r.first().unwrap().get::<&str>(0).unwrap(), "from .env");
    std::env::set_var("SKYLITE_AUTH_TOKEN", "overridden-by-env");
    let config = Config::from_env_file(file.path()).unwrap();
    std::env::remove_var("SKYLITE_AUTH_TOKEN");
    assert_eq!(config.auth_token.as_deref(), Some("overridden-by-env"));
    let db = skylite_client::blocking::Client::open(config).unwrap();
    let e = db.execute("SELECT 1", ()).unwrap_err();
    assert_eq!(e.http_status(), Some(401), "{e}");
    // A local file from the environment works the same way.
    #[cfg(feature = "local")]
    local_file_from_env();
}

#[cfg(feature = "local")]
fn local_file_from_env() {
    let dir = tempfile::tempdir().unwrap();
    let local = dotenv(&format!(
        "SKYLITE_URL=file:{}\n",
        dir.path().join("env.db").display()
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = skylite_client::Client::open(Config::from_env_file(local.path()).unwrap())
            .await
            .unwrap();
        assert!(!db.is_remote());
        db.execute("CREATE TABLE t (x)", ()).await.unwrap();
    });
}
