//! `skylite keygen` and `skylite token create|revoke|inspect`, run as the real binary: the
//! tokens it prints verify against the data folder's key, flags and `SKYLITE_*` variables shape
//! the claims, keygen prints what sqld's key file takes, revocations persist.

use std::path::Path;
use std::process::{Command, Output};

use skylite_auth::{
    load_public_key_file, parse_public_keys, Access, AuthConfig, AuthError, Authenticator, Grant,
    RevocationList,
};

fn skylite(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skylite"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SKYLITE_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run skylite")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn create(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> String {
    let mut args = vec!["token", "create", "--data-dir", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    let stdout = ok(&skylite(&args, env));
    let token = stdout.trim().to_owned();
    assert_eq!(stdout, format!("{token}\n"), "stdout holds the token alone");
    token
}

/// Verifies with nothing but the data folder's public key file.
fn verifier(data: &Path) -> Authenticator {
    let keys = load_public_key_file(&data.join(".skylite/jwt.pub")).unwrap();
    let list = RevocationList::for_data_dir(data).unwrap();
    Authenticator::with_keys(keys, Some(list), false)
}

#[test]
fn token_create_verifies_against_the_data_folder_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // Default: database `default`, read-write, 30 days.
    let token = create(&data, &[], &[]);
    assert!(data.join(".skylite/jwt.key").exists());
    let auth = verifier(&data);
    let p = auth.authenticate(Some(&token)).unwrap();
    assert_eq!(p.authorize("default", Access::Write), Ok(Grant::ReadWrite));
    assert!(p.authorize("other", Access::Read).is_err());
    let c = p.claims().unwrap();
    assert_eq!(c.exp.unwrap() - c.iat.unwrap(), 30 * 86_400);
    assert_eq!(c.jti.as_ref().unwrap().len(), 32);

    // The server's own authenticator over the same folder accepts it (same key, not a new one).
    let server = Authenticator::from_config(&AuthConfig::new(&data)).unwrap();
    assert!(!server.keypair().unwrap().created);
    assert!(server.authenticate(Some(&token)).is_ok());

    // Read-only, named database, hours.
    let token = create(
        &data,
        &["--db", "app", "--read-only", "--expires", "12h"],
        &[],
    );
    let p = auth.authenticate(Some(&token)).unwrap();
    assert_eq!(p.authorize("app", Access::Read), Ok(Grant::ReadOnly));
    assert_eq!(
        p.authorize("app", Access::Write),
        Err(AuthError::ReadOnly("app".into()))
    );
    let c = p.claims().unwrap();
    assert_eq!(c.exp.unwrap() - c.iat.unwrap(), 12 * 3600);

    // Several databases, never expiring.
    let token = create(
        &data,
        &["--db", "a", "--db", "b", "--expires", "never"],
        &[],
    );
    let p = auth.authenticate(Some(&token)).unwrap();
    assert_eq!(p.authorize("a", Access::Write), Ok(Grant::ReadWrite));
    assert_eq!(p.authorize("b", Access::Write), Ok(Grant::ReadWrite));
    assert_eq!(p.claims().unwrap().exp, None);

    // Admin.
    let token = create(&data, &["--admin", "--expires", "90m"], &[]);
    let p = auth.authenticate(Some(&token)).unwrap();
    assert_eq!(p.authorize_admin(), Ok(()));
    assert_eq!(p.authorize("anything", Access::Write), Ok(Grant::ReadWrite));

    // The same through SKYLITE_* variables.
    let env = [
        ("SKYLITE_DATA_DIR", data.to_str().unwrap()),
        ("SKYLITE_TOKEN_DB", "x,y"),
        ("SKYLITE_TOKEN_READ_ONLY", "true"),
        ("SKYLITE_TOKEN_EXPIRES", "3600s"),
    ];
    let token = ok(&skylite(&["token", "create"], &env)).trim().to_owned();
    let p = auth.authenticate(Some(&token)).unwrap();
    assert_eq!(p.authorize("y", Access::Read), Ok(Grant::ReadOnly));
    assert!(p.authorize("x", Access::Write).is_err());
    let c = p.claims().unwrap();
    assert_eq!(c.exp.unwrap() - c.iat.unwrap(), 3600);
    let token = ok(&skylite(
        &["token", "create"],
        &[
            ("SKYLITE_DATA_DIR", data.to_str().unwrap()),
            ("SKYLITE_TOKEN_ADMIN", "true"),
        ],
    ))
    .trim()
    .to_owned();
    assert!(auth
        .authenticate(Some(&token))
        .unwrap()
        .authorize_admin()
        .is_ok());
}

#[test]
fn token_create_refuses_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for args in [
        vec!["token", "create", "--data-dir", data, "--expires", "5x"],
        vec!["token", "create", "--data-dir", data, "--expires", "0s"],
        vec![
            "token",
            "create",
            "--data-dir",
            data,
            "--admin",
            "--read-only",
        ],
        vec![
            "token",
            "create",
            "--data-dir",
            data,
            "--admin",
            "--db",
            "a",
        ],
    ] {
        let out = skylite(&args, &[]);
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn keygen_prints_paths_and_an_sqld_key_line() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("keys");
    let stdout = ok(&skylite(
        &["keygen", "--out-dir", out_dir.to_str().unwrap()],
        &[],
    ));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let private = out_dir.join("jwt.key");
    let public = out_dir.join("jwt.pub");
    assert_eq!(lines[0], format!("private key: {}", private.display()));
    assert_eq!(lines[1], format!("public key: {}", public.display()));
    let raw = lines[2].strip_prefix("public key (base64url): ").unwrap();
    assert_eq!(raw.len(), 43);
    assert!(raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    // The raw line and the PEM file are the same key.
    assert_eq!(
        parse_public_keys(raw).unwrap(),
        load_public_key_file(&public).unwrap()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Tokens signed with that key verify against the printed line.
    let token = ok(&skylite(
        &[
            "token",
            "create",
            "--key-file",
            private.to_str().unwrap(),
            "--db",
            "app",
        ],
        &[],
    ))
    .trim()
    .to_owned();
    let auth = Authenticator::with_keys(parse_public_keys(raw).unwrap(), None, false);
    let p = auth.authenticate(Some(&token)).unwrap();
    assert_eq!(p.authorize("app", Access::Write), Ok(Grant::ReadWrite));

    // A second keygen into the same folder refuses to replace the key.
    let again = skylite(&["keygen", "--out-dir", out_dir.to_str().unwrap()], &[]);
    assert!(!again.status.success());
    assert_eq!(
        parse_public_keys(raw).unwrap(),
        load_public_key_file(&public).unwrap()
    );
}

#[test]
fn revoke_persists_and_spares_other_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let t1 = create(data, &["--db", "app"], &[]);
    let t2 = create(data, &["--db", "app"], &[]);
    let t3 = create(data, &["--db", "app"], &[]);
    let auth = verifier(data);
    let jti1 = auth
        .authenticate(Some(&t1))
        .unwrap()
        .jti()
        .unwrap()
        .to_owned();

    // By jti.
    let out = ok(&skylite(
        &[
            "token",
            "revoke",
            "--data-dir",
            data.to_str().unwrap(),
            &jti1,
        ],
        &[],
    ));
    assert_eq!(out, format!("revoked {jti1}\n"));
    // By the token itself.
    ok(&skylite(
        &["token", "revoke", "--data-dir", data.to_str().unwrap(), &t2],
        &[],
    ));
    // Again: nothing changes.
    let out = ok(&skylite(
        &[
            "token",
            "revoke",
            "--data-dir",
            data.to_str().unwrap(),
            &jti1,
        ],
        &[],
    ));
    assert!(out.contains("already revoked"));

    let fresh = verifier(data);
    assert_eq!(
        fresh.authenticate(Some(&t1)).unwrap_err(),
        AuthError::Revoked(jti1.clone())
    );
    assert!(matches!(
        fresh.authenticate(Some(&t2)).unwrap_err(),
        AuthError::Revoked(_)
    ));
    assert!(fresh.authenticate(Some(&t3)).is_ok());
    // The authenticator that was already running sees it after a reload.
    auth.reload().unwrap();
    assert!(auth.authenticate(Some(&t1)).is_err());

    let file = std::fs::read_to_string(data.join(".skylite/revoked.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(json["revoked"].as_array().unwrap().len(), 2);
    assert_eq!(json["revoked"][0]["jti"], jti1.as_str());
    assert!(json["revoked"][1]["exp"].is_i64());
}

#[test]
fn inspect_prints_claims() {
    let dir = tempfile::tempdir().unwrap();
    let token = create(dir.path(), &["--db", "app", "--read-only"], &[]);
    let out = skylite(&["token", "inspect", &token], &[]);
    let json: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(json["header"]["alg"], "EdDSA");
    assert_eq!(json["payload"]["id"], "app");
    assert_eq!(json["payload"]["a"], "ro");
    assert_eq!(json["payload"]["p"]["ro"]["ns"][0], "app");
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT checked"));
    assert!(!skylite(&["token", "inspect", "garbage"], &[])
        .status
        .success());
}
