//! The security matrix over HTTP, with a real server on 127.0.0.1:0 and auth on: every SQL
//! endpoint (`POST /`, `/v1/execute`, `/v1/batch`, `/v2/pipeline`, `/v3/pipeline`, `/v3/cursor`,
//! `/v3-protobuf/pipeline`) and the admin API × every kind of token (none, malformed, badly
//! signed, algorithm confusion, expired, not yet valid, revoked, wrong database, unscoped,
//! read-only, full, admin); read-only tokens trying every way to write; SQL trying to leave its
//! database; path traversal through database names; batons crossing databases.
//! The WebSocket side is in `auth_ws.rs`.

use crate::auth_common;
use crate::common;

use std::time::{Duration, Instant};

use auth_common::*;
use common::{request_with, server_panics};
use serde_json::{json, Value};
use skylite_auth::{generate_keypair, RevocationList};

/// One token case of the matrix: the `Authorization` header, and the refusal expected (`None`:
/// the request must succeed).
struct Case {
    name: &'static str,
    header: Option<String>,
    expect: Option<(u16, &'static str, &'static [&'static str])>,
}

fn case(
    name: &'static str,
    header: Option<String>,
    expect: Option<(u16, &'static str, &'static [&'static str])>,
) -> Case {
    Case {
        name,
        header,
        expect,
    }
}

/// Every token that must not get in, with the answer it must get (the same on every
/// endpoint, admin API included, except the ones that are about databases).
fn unauthenticated_cases(s: &AuthServer) -> Vec<Case> {
    let other_key = generate_keypair(&s.server.dir.path().join("other-key"))
        .expect("another key pair")
        .signing;
    let app_claims = json!({"id": "app", "a": "rw", "p": {"rw": {"ns": ["app"]}}});
    let public = s.key.verifying_key();
    let public_pem = std::fs::read_to_string(s.data_dir().join(".skylite/jwt.pub")).unwrap();
    // A valid token for `app` whose payload was swapped for one granting the admin API.
    let valid = s.token(&["app"], false);
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    parts[1] = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"skylite_admin":true}"#)
    };
    let tampered = parts.join(".");
    let revoked = s.token(&["app"], false);
    let (_, revoked_claims) = skylite_auth::decode_unverified(&revoked).unwrap();
    assert!(s
        .server
        .app
        .auth
        .revoke(revoked_claims["jti"].as_str().unwrap(), None)
        .unwrap());

    vec![
        case(
            "no token",
            None,
            Some((
                401,
                "AUTH_JWT_MISSING",
                &["authentication required", "Bearer"],
            )),
        ),
        case(
            "empty bearer",
            Some("Bearer ".into()),
            Some((401, "AUTH_JWT_MISSING", &["authentication required"])),
        ),
        case(
            "Bearer garbage",
            Some("Bearer garbage".into()),
            Some((401, "AUTH_JWT_INVALID", &["malformed token", "three"])),
        ),
        case(
            "Bearer a.b.c",
            Some("Bearer a.b.c".into()),
            Some((401, "AUTH_JWT_INVALID", &["malformed token"])),
        ),
        case(
            "Basic xyz",
            Some("Basic xyz".into()),
            Some((
                401,
                "AUTH_HTTP_HEADER_UNSUPPORTED_SCHEME",
                &["scheme `Basic`", "Bearer"],
            )),
        ),
        case(
            "Bearer None (python client, no token)",
            Some("Bearer None".into()),
            Some((401, "AUTH_JWT_INVALID", &["malformed token"])),
        ),
        case(
            "wrong signature (other key)",
            Some(bearer(&sign_claims(&other_key, app_claims.clone()))),
            Some((401, "AUTH_JWT_INVALID", &["signature", "trusted key"])),
        ),
        case(
            "tampered payload",
            Some(bearer(&tampered)),
            Some((401, "AUTH_JWT_INVALID", &["signature"])),
        ),
        case(
            "alg none",
            Some(bearer(&forged(
                json!({"alg": "none", "typ": "JWT"}),
                &app_claims,
                b"",
            ))),
            Some((401, "AUTH_JWT_ALGORITHM", &["`none`", "EdDSA"])),
        ),
        case(
            "alg none, valid EdDSA signature kept",
            Some(bearer(&{
                let mut p: Vec<String> = valid.split('.').map(str::to_owned).collect();
                use base64::Engine as _;
                p[0] = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(br#"{"alg":"none","typ":"JWT"}"#);
                p.join(".")
            })),
            Some((401, "AUTH_JWT_ALGORITHM", &["`none`", "EdDSA"])),
        ),
        case(
            "HS256 with the public key bytes",
            Some(bearer(&hs256_with(public.as_bytes(), &app_claims))),
            Some((401, "AUTH_JWT_ALGORITHM", &["`HS256`", "EdDSA"])),
        ),
        case(
            "HS256 with the public key PEM",
            Some(bearer(&hs256_with(public_pem.as_bytes(), &app_claims))),
            Some((401, "AUTH_JWT_ALGORITHM", &["`HS256`", "EdDSA"])),
        ),
        case(
            "expired",
            Some(bearer(&s.signed(json!({
                "id": "app", "skylite_admin": true, "exp": now() - 3600
            })))),
            Some((401, "AUTH_JWT_EXPIRED", &["expired"])),
        ),
        case(
            "not yet valid",
            Some(bearer(&s.signed(json!({
                "id": "app", "skylite_admin": true, "nbf": now() + 3600
            })))),
            Some((401, "AUTH_JWT_IMMATURE", &["not valid before"])),
        ),
        case(
            "revoked",
            Some(bearer(&revoked)),
            Some((401, "AUTH_JWT_REVOKED", &["revoked"])),
        ),
    ]
}

/// Prints the matrix (run with `--nocapture` to see it).
fn print_matrix(title: &str, cols: &[&str], rows: &[(String, Vec<String>)]) {
    println!("\n{title}\n| case | {} |", cols.join(" | "));
    println!("|---|{}", "---|".repeat(cols.len()));
    for (name, cells) in rows {
        println!("| {name} | {} |", cells.join(" | "));
    }
}

fn short(o: &Outcome) -> String {
    match o {
        Outcome::Refused { status, code, .. } => format!("{status} {code}"),
        Outcome::Rows(r) => format!("200 ok ({} rows)", r.len()),
        Outcome::SqlError { code, .. } => {
            format!("SQL error {}", code.as_deref().unwrap_or("(no code)"))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http_endpoint_answers_every_token_rightly() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    let mut table: Vec<(String, Vec<String>)> = Vec::new();
    let cols: Vec<&str> = HTTP_EPS.iter().map(|e| e.path()).collect();

    // Refused before any SQL runs.
    let mut refusals = unauthenticated_cases(&s);
    refusals.push(case(
        "wrong database (token for other)",
        Some(bearer(&s.token(&["other"], false))),
        Some((403, "AUTH_DATABASE_FORBIDDEN", &["`other`", "not `app`"])),
    ));
    refusals.push(case(
        "read-only token for other",
        Some(bearer(&s.token(&["other"], true))),
        Some((403, "AUTH_DATABASE_FORBIDDEN", &["`other`", "not `app`"])),
    ));
    refusals.push(case(
        "p lists other databases",
        Some(bearer(&s.token(&["other", "default"], false))),
        Some((403, "AUTH_DATABASE_FORBIDDEN", &["`app`", "`other`"])),
    ));
    refusals.push(case(
        "no scope claims",
        Some(bearer(&s.signed(json!({"a": "rw", "jti": "x1"})))),
        Some((
            403,
            "AUTH_JWT_UNSCOPED",
            &["grants nothing", "--auth-legacy-full-access"],
        )),
    ));
    refusals.push(case(
        "empty claims",
        Some(bearer(&s.signed(json!({})))),
        Some((403, "AUTH_JWT_UNSCOPED", &["grants nothing"])),
    ));
    for c in &refusals {
        let (status, code, words) = c.expect.unwrap();
        let mut cells = Vec::new();
        for ep in HTTP_EPS {
            // A read, and a write, so that nothing gets through either way.
            for sql in ["SELECT x FROM t", "INSERT INTO t VALUES (666)"] {
                let o = run_sql(addr, ep, Some("app"), c.header.as_deref(), sql).await;
                let msg = match &o {
                    Outcome::Refused {
                        status: st,
                        code: co,
                        message,
                    } if *st == status && co == code => message,
                    other => panic!(
                        "{} on {ep:?} ({sql}): expected {status} {code}, got {other:?}",
                        c.name
                    ),
                };
                for w in words {
                    assert!(
                        msg.contains(w),
                        "{} on {ep:?}: message {msg:?} lacks {w:?}",
                        c.name
                    );
                }
            }
            cells.push(format!("{status} {code}"));
        }
        table.push((c.name.to_owned(), cells));
    }

    // A token for `app` on a request that names no database (so `default`).
    let app_full = bearer(&s.token(&["app"], false));
    let mut cells = Vec::new();
    for ep in HTTP_EPS {
        let o = run_sql(addr, ep, None, Some(&app_full), "SELECT 1").await;
        let msg = o.refused(403, "AUTH_DATABASE_FORBIDDEN");
        assert!(msg.contains("`default`"), "{msg}");
        cells.push(short(&o));
    }
    table.push(("token for app, no database named (default)".into(), cells));

    // Allowed: full access, admin token, lower-case scheme; read-only reads.
    let ro = bearer(&s.token(&["app"], true));
    let ro_p_only = bearer(&s.signed(json!({"p": {"ro": {"ns": ["app"]}}})));
    let ro_capped = bearer(&s.signed(json!({"a": "ro", "p": {"rw": {"ns": ["app"]}}})));
    let admin = bearer(&s.admin());
    let lower = format!("bearer {}", s.token(&["app"], false));
    let id_only = bearer(&s.signed(json!({"id": "app"})));
    let exp_in_leeway = bearer(&s.signed(json!({"id": "app", "exp": now() - 5})));
    let writers: [(&str, &str); 5] = [
        ("full access (minted --db app)", &app_full),
        ("admin token", &admin),
        ("scheme in lower case", &lower),
        ("sqld token {id: app}", &id_only),
        ("expired 5 s ago (within the 30 s leeway)", &exp_in_leeway),
    ];
    let mut inserted = 0;
    for (name, header) in writers {
        let mut cells = Vec::new();
        for ep in HTTP_EPS {
            let o = run_sql(
                addr,
                ep,
                Some("app"),
                Some(header),
                "SELECT x FROM t ORDER BY x",
            )
            .await;
            assert_eq!(
                o.rows()[..2],
                [vec![json!(1)], vec![json!(2)]],
                "{name} on {ep:?}"
            );
            let w = run_sql(
                addr,
                ep,
                Some("app"),
                Some(header),
                "INSERT INTO t VALUES (100)",
            )
            .await;
            assert!(matches!(w, Outcome::Rows(_)), "{name} on {ep:?}: {w:?}");
            inserted += 1;
            cells.push(format!("{} / write ok", short(&o)));
        }
        table.push((name.to_owned(), cells));
    }
    for (name, header) in [
        ("read-only (minted --read-only)", &ro),
        ("read-only via p.ro only", &ro_p_only),
        ("a: ro caps p.rw", &ro_capped),
    ] {
        let mut cells = Vec::new();
        for ep in HTTP_EPS {
            let o = run_sql(
                addr,
                ep,
                Some("app"),
                Some(header),
                "SELECT count(*) FROM t",
            )
            .await;
            assert_eq!(
                o.rows(),
                &vec![vec![json!(2 + inserted)]],
                "{name} on {ep:?}"
            );
            for sql in [
                "INSERT INTO t VALUES (666)",
                "DELETE FROM t",
                "UPDATE t SET x = 0",
            ] {
                let w = run_sql(addr, ep, Some("app"), Some(header), sql).await;
                w.read_only_refusal();
            }
            cells.push(format!(
                "read {} / write {}",
                short(&o),
                short(&run_sql(addr, ep, Some("app"), Some(header), "DELETE FROM t").await)
            ));
        }
        table.push((name.to_owned(), cells));
    }
    // Nothing the refused requests sent was written.
    let check = run_sql(
        addr,
        Ep::V3,
        Some("app"),
        Some(&app_full),
        "SELECT count(*), sum(x = 666) FROM t",
    )
    .await;
    assert_eq!(check.rows(), &vec![vec![json!(2 + inserted), json!(0)]]);

    print_matrix("HTTP endpoints x tokens (database `app`)", &cols, &table);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_an_admin_token() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    let admin_call = |method: &'static str, path: &'static str, auth: Option<String>| async move {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        let body = (method == "POST").then(|| {
            serde_json::to_vec(&json!({"name": format!("made-{}", now() % 1000)})).unwrap()
        });
        request_with(addr, method, path, &headers, body).await
    };
    let calls: [(&str, &str); 5] = [
        ("GET", "/v1/admin/databases"),
        ("POST", "/v1/admin/databases"),
        ("GET", "/v1/admin/databases/app"),
        ("DELETE", "/v1/admin/databases/app"),
        ("POST", "/v1/admin/databases/app/fork"),
    ];
    let mut table = Vec::new();
    let mut cases = unauthenticated_cases(&s);
    let words: &'static [&'static str] = &["admin API", "skylite_admin"];
    cases.push(case(
        "database token (full access to app)",
        Some(bearer(&s.token(&["app"], false))),
        Some((403, "AUTH_ADMIN_FORBIDDEN", words)),
    ));
    cases.push(case(
        "database token for every database",
        Some(bearer(&s.token(&["app", "other", "default"], false))),
        Some((403, "AUTH_ADMIN_FORBIDDEN", words)),
    ));
    cases.push(case(
        "read-only token",
        Some(bearer(&s.token(&["app"], true))),
        Some((403, "AUTH_ADMIN_FORBIDDEN", words)),
    ));
    cases.push(case(
        "no scope claims",
        Some(bearer(&s.signed(json!({"a": "rw"})))),
        Some((403, "AUTH_ADMIN_FORBIDDEN", words)),
    ));
    cases.push(case(
        "admin marker capped by a: ro",
        Some(bearer(&s.signed(json!({"skylite_admin": true, "a": "ro"})))),
        Some((403, "AUTH_ADMIN_FORBIDDEN", &["read-only", "admin API"])),
    ));
    cases.push(case(
        "skylite_admin: false",
        Some(bearer(
            &s.signed(json!({"skylite_admin": false, "id": "app"})),
        )),
        Some((403, "AUTH_ADMIN_FORBIDDEN", words)),
    ));
    for c in &cases {
        let (status, code, words) = c.expect.unwrap();
        let mut cells = Vec::new();
        for (method, path) in calls {
            let r = admin_call(method, path, c.header.clone()).await;
            let (st, co, msg) = http_error(&r);
            assert_eq!(
                (st, co.as_str()),
                (status, code),
                "{} on {method} {path}: {msg}",
                c.name
            );
            for w in words {
                assert!(msg.contains(w), "{}: {msg:?} lacks {w:?}", c.name);
            }
            cells.push(format!("{st} {co}"));
        }
        table.push((c.name.to_owned(), cells));
    }
    // Nothing happened: `app` is still there, nothing was created or forked.
    let admin = bearer(&s.admin());
    let r = admin_call("GET", "/v1/admin/databases", Some(admin.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let names: Vec<String> = r.json()["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["app", "default", "other"]);

    // The admin token works.
    let mut cells = Vec::new();
    let r = admin_call("GET", "/v1/admin/databases", Some(admin.clone())).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    cells.push("200".to_owned());
    let r = request_with(
        addr,
        "POST",
        "/v1/admin/databases",
        &[("authorization", &admin)],
        Some(br#"{"name": "fresh"}"#.to_vec()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json(), json!({"name": "fresh", "created": true}));
    cells.push("201".to_owned());
    let r = admin_call("GET", "/v1/admin/databases/app", Some(admin.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    cells.push("200".to_owned());
    let r = request_with(
        addr,
        "DELETE",
        "/v1/admin/databases/fresh",
        &[("authorization", &admin)],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    cells.push("200 (fresh)".to_owned());
    let r = request_with(
        addr,
        "POST",
        "/v1/admin/databases/app/fork",
        &[("authorization", &admin)],
        Some(br#"{"to": "app-copy"}"#.to_vec()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    cells.push("201".to_owned());
    table.push(("admin token".to_owned(), cells));
    let cols: Vec<String> = calls.iter().map(|(m, p)| format!("{m} {p}")).collect();
    let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
    print_matrix("admin API x tokens", &cols, &table);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_full_access_opens_databases_to_unscoped_tokens_but_never_the_admin_api() {
    let s = AuthServer::start_with(|c| c.auth.legacy_full_access = true).await;
    let addr = s.addr();
    let unscoped = bearer(&s.signed(json!({"jti": "legacy-1"})));
    let unscoped_ro = bearer(&s.signed(json!({"a": "ro"})));
    let mut cells = Vec::new();
    for ep in HTTP_EPS {
        for db in [Some("app"), Some("other"), None] {
            let o = run_sql(addr, ep, db, Some(&unscoped), "SELECT count(*) FROM t").await;
            if db.is_some() {
                assert!(matches!(o, Outcome::Rows(_)), "{ep:?} {db:?}: {o:?}");
            } else {
                // `default` has no table t: the SQL ran, and failed on its own terms.
                assert!(
                    matches!(&o, Outcome::SqlError { message, .. } if message.contains("no such table")),
                    "{ep:?} default: {o:?}"
                );
            }
        }
        let w = run_sql(addr, ep, Some("app"), Some(&unscoped), "UPDATE t SET x = x").await;
        assert!(matches!(w, Outcome::Rows(_)), "{ep:?}: {w:?}");
        let o = run_sql(addr, ep, Some("app"), Some(&unscoped_ro), "SELECT x FROM t").await;
        assert_eq!(o.rows().len(), 2);
        run_sql(addr, ep, Some("app"), Some(&unscoped_ro), "DELETE FROM t")
            .await
            .read_only_refusal();
        cells.push("rw ok; a:ro reads, writes refused".to_owned());
        // Bad tokens are still bad.
        run_sql(addr, ep, Some("app"), None, "SELECT 1")
            .await
            .refused(401, "AUTH_JWT_MISSING");
        run_sql(addr, ep, Some("app"), Some("Bearer None"), "SELECT 1")
            .await
            .refused(401, "AUTH_JWT_INVALID");
    }
    for (method, path) in [
        ("GET", "/v1/admin/databases"),
        ("POST", "/v1/admin/databases"),
    ] {
        let r = request_with(
            addr,
            method,
            path,
            &[("authorization", &unscoped)],
            (method == "POST").then(|| br#"{"name": "x"}"#.to_vec()),
        )
        .await;
        let (st, code, msg) = http_error(&r);
        assert_eq!((st, code.as_str()), (403, "AUTH_ADMIN_FORBIDDEN"), "{msg}");
    }
    let cols: Vec<&str> = HTTP_EPS.iter().map(|e| e.path()).collect();
    print_matrix(
        "--auth-legacy-full-access, token with no scope claims (admin API: 403)",
        &cols,
        &[("{} / {a: ro}".to_owned(), cells)],
    );
    assert!(!s.data_dir().join("x").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_within_a_second() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    let (token, claims) = skylite_auth::mint(
        &s.key,
        &skylite_auth::TokenSpec {
            databases: vec!["app".into()],
            lifetime: Some(Duration::from_secs(3600)),
            ..Default::default()
        },
    )
    .unwrap();
    let keep = bearer(&s.token(&["app"], false));
    let header = bearer(&token);
    for ep in HTTP_EPS {
        run_sql(addr, ep, Some("app"), Some(&header), "SELECT 1")
            .await
            .rows();
    }
    // Revoked by another process (what `skylite token revoke` does): the server reads the file.
    let list = RevocationList::for_data_dir(&s.data_dir()).unwrap();
    let revoked_at = Instant::now();
    assert!(list
        .revoke(claims.jti.as_deref().unwrap(), claims.exp)
        .unwrap());
    loop {
        let o = run_sql(addr, Ep::V3, Some("app"), Some(&header), "SELECT 1").await;
        if let Outcome::Refused { .. } = o {
            let msg = o.refused(401, "AUTH_JWT_REVOKED");
            assert!(msg.contains("revoked"), "{msg}");
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "the server still accepts a token revoked {:?} ago",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("revocation noticed after {:?}", revoked_at.elapsed());
    for ep in HTTP_EPS {
        run_sql(addr, ep, Some("app"), Some(&header), "SELECT 1")
            .await
            .refused(401, "AUTH_JWT_REVOKED");
        // Only that token: another one for the same database still works.
        run_sql(addr, ep, Some("app"), Some(&keep), "SELECT 1")
            .await
            .rows();
    }
    // Revoked through the server's own Authenticator: at once.
    let (admin, admin_claims) = skylite_auth::mint(
        &s.key,
        &skylite_auth::TokenSpec {
            admin: true,
            ..Default::default()
        },
    )
    .unwrap();
    let r = request_with(
        addr,
        "GET",
        "/v1/admin/databases",
        &[("authorization", &bearer(&admin))],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    s.server
        .app
        .auth
        .revoke(admin_claims.jti.as_deref().unwrap(), None)
        .unwrap();
    let r = request_with(
        addr,
        "GET",
        "/v1/admin/databases",
        &[("authorization", &bearer(&admin))],
        None,
    )
    .await;
    let (st, code, _) = http_error(&r);
    assert_eq!((st, code.as_str()), (401, "AUTH_JWT_REVOKED"));
}

/// An HTTP stream (baton between pipelines) with a token.
struct Stream {
    addr: std::net::SocketAddr,
    path: String,
    auth: String,
    baton: Option<String>,
}

impl Stream {
    fn new(s: &AuthServer, db: &str, token: &str) -> Stream {
        Stream {
            addr: s.addr(),
            path: format!("/db/{db}/v3/pipeline"),
            auth: bearer(token),
            baton: None,
        }
    }

    async fn send(&mut self, requests: Value) -> Value {
        let r = request_with(
            self.addr,
            "POST",
            &self.path,
            &[("authorization", &self.auth)],
            Some(serde_json::to_vec(&json!({"baton": self.baton, "requests": requests})).unwrap()),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        self.baton = v["baton"].as_str().map(str::to_owned);
        v
    }

    async fn exec(&mut self, sql: &str) -> Outcome {
        let v = self
            .send(json!([{"type": "execute", "stmt": {"sql": sql}}]))
            .await;
        let r = &v["results"][0];
        if r["type"] == "ok" {
            Outcome::Rows(
                r["response"]["result"]["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|row| row.as_array().unwrap().iter().map(common::plain).collect())
                    .collect(),
            )
        } else {
            Outcome::SqlError {
                code: r["error"]["code"].as_str().map(str::to_owned),
                message: r["error"]["message"].as_str().unwrap().to_owned(),
            }
        }
    }
}

/// What `app` holds, to compare before and after.
async fn snapshot(s: &AuthServer, full: &str) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    for sql in [
        "SELECT type, name, sql FROM sqlite_schema ORDER BY name",
        "SELECT x FROM t ORDER BY x",
        "PRAGMA user_version",
        "PRAGMA application_id",
        "SELECT count(*) FROM log",
    ] {
        let o = run_sql(s.addr(), Ep::V3, Some("app"), Some(&bearer(full)), sql).await;
        out.extend(o.rows().clone());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_cannot_write_by_any_trick() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    let full = s.token(&["app"], false);
    let ro = s.token(&["app"], true);
    // A view whose INSTEAD OF trigger writes, an index, a log table fed by a trigger.
    let mut admin_stream = Stream::new(&s, "app", &full);
    for sql in [
        "CREATE TABLE log(msg)",
        "CREATE VIEW v AS SELECT x FROM t",
        "CREATE TRIGGER v_ins INSTEAD OF INSERT ON v BEGIN INSERT INTO t VALUES (new.x); END",
        "CREATE TRIGGER t_log AFTER UPDATE ON t BEGIN INSERT INTO log VALUES ('updated'); END",
        "CREATE INDEX t_x ON t(x)",
    ] {
        admin_stream.exec(sql).await.rows();
    }
    let before = snapshot(&s, &full).await;

    let writes = [
        "INSERT INTO t VALUES (3)",
        "INSERT OR IGNORE INTO t VALUES (3)",
        "REPLACE INTO t VALUES (3)",
        "INSERT INTO t SELECT x + 10 FROM t",
        "WITH n(v) AS (SELECT 5) INSERT INTO t SELECT v FROM n",
        "UPDATE t SET x = x + 1",
        "DELETE FROM t",
        "DELETE FROM t WHERE x = 1 RETURNING x",
        "INSERT INTO t VALUES (4) RETURNING x",
        "UPDATE t SET x = 7 RETURNING *",
        "INSERT INTO v VALUES (9)",
        "CREATE TABLE u(y)",
        "CREATE TABLE IF NOT EXISTS t(x)",
        "CREATE TEMP TABLE tmp(y)",
        "CREATE TEMP VIEW tv AS SELECT 1",
        "CREATE INDEX t_x2 ON t(x)",
        "CREATE VIEW v2 AS SELECT 1",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM t; END",
        "CREATE VIRTUAL TABLE ft USING fts5(body)",
        "DROP TABLE t",
        "DROP TABLE IF EXISTS log",
        "DROP VIEW v",
        "DROP INDEX t_x",
        "DROP TRIGGER t_log",
        "ALTER TABLE t ADD COLUMN y",
        "ALTER TABLE t RENAME TO t2",
        "ALTER TABLE t RENAME COLUMN x TO z",
        "PRAGMA user_version = 5",
        "PRAGMA application_id = 7",
        "PRAGMA main.user_version = 5",
        "REINDEX",
        "ANALYZE",
        "VACUUM",
        "BEGIN IMMEDIATE",
        "BEGIN EXCLUSIVE",
    ];
    // On one stream, each statement alone.
    let mut st = Stream::new(&s, "app", &ro);
    let mut seen = Vec::new();
    for sql in writes {
        let o = st.exec(sql).await;
        match &o {
            Outcome::SqlError { code, message }
                if message.contains("read-only")
                    && matches!(code.as_deref(), Some("SQLITE_READONLY" | "SQLITE_AUTH")) => {}
            other => panic!("read-only token ran {sql:?}: {other:?}"),
        }
        seen.push(format!("{sql}: {}", short(&o)));
    }
    // The stream still works and is in autocommit.
    assert_eq!(
        st.exec("SELECT count(*) FROM t").await.rows(),
        &vec![vec![json!(2)]]
    );

    // A write inside BEGIN ... COMMIT on a stream.
    st.exec("BEGIN").await.rows();
    st.exec("SELECT * FROM t").await.rows();
    st.exec("INSERT INTO t VALUES (3)")
        .await
        .read_only_refusal();
    st.exec("UPDATE t SET x = 0").await.read_only_refusal();
    st.exec("COMMIT").await.rows();
    st.exec("BEGIN DEFERRED").await.rows();
    st.exec("DELETE FROM t").await.read_only_refusal();
    st.exec("ROLLBACK").await.rows();
    // SAVEPOINTs are fine, writes inside them are not.
    st.exec("SAVEPOINT sp").await.rows();
    st.exec("INSERT INTO t VALUES (3)")
        .await
        .read_only_refusal();
    st.exec("RELEASE sp").await.rows();

    // A batch with a write step (the later steps conditioned on it are skipped).
    let v = st
        .send(json!([{"type": "batch", "batch": {"steps": [
            {"stmt": {"sql": "SELECT 1"}},
            {"stmt": {"sql": "INSERT INTO t VALUES (3)"}},
            {"stmt": {"sql": "DELETE FROM t"}, "condition": {"type": "ok", "step": 0}},
            {"stmt": {"sql": "SELECT count(*) FROM t"}},
        ]}}]))
        .await;
    let res = &v["results"][0]["response"]["result"];
    assert!(res["step_errors"][0].is_null(), "{v}");
    for i in [1, 2] {
        let msg = res["step_errors"][i]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(msg.contains("read-only"), "batch step {i}: {v}");
    }
    // A sequence with a write.
    for sql in [
        "SELECT 1; INSERT INTO t VALUES (3);",
        "BEGIN; DELETE FROM t; COMMIT;",
        "PRAGMA user_version = 9; SELECT 1;",
    ] {
        let v = st.send(json!([{"type": "sequence", "sql": sql}])).await;
        let r = &v["results"][0];
        assert_eq!(r["type"], "error", "sequence {sql}: {v}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("read-only"),
            "{v}"
        );
    }
    // Stored SQL does not help.
    let v = st
        .send(json!([
            {"type": "store_sql", "sql_id": 1, "sql": "DELETE FROM t"},
            {"type": "execute", "stmt": {"sql_id": 1}},
            {"type": "close"},
        ]))
        .await;
    assert!(
        v["results"][1]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("read-only"),
        "{v}"
    );
    // A cursor with a write step.
    let r = request_with(
        addr,
        "POST",
        "/db/app/v3/cursor",
        &[("authorization", &bearer(&ro))],
        Some(
            serde_json::to_vec(&json!({"baton": null, "batch": {"steps": [
                {"stmt": {"sql": "SELECT x FROM t"}},
                {"stmt": {"sql": "INSERT INTO t VALUES (3) RETURNING x"}},
                {"stmt": {"sql": "DELETE FROM t"}},
            ]}}))
            .unwrap(),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let errors: Vec<Value> = r
        .text()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "step_error")
        .collect();
    assert_eq!(errors.len(), 2, "{}", r.text());
    for e in &errors {
        assert!(e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read-only"));
    }
    // The legacy endpoints, several statements at once.
    for (path, body) in [
        (
            "/db/app/",
            json!({"statements": ["SELECT 1", "INSERT INTO t VALUES (3)"]}),
        ),
        (
            "/db/app/v1/batch",
            json!({"batch": {"steps": [{"stmt": {"sql": "SELECT 1"}}, {"stmt": {"sql": "DELETE FROM t"}}]}}),
        ),
        (
            "/db/app/v1/execute",
            json!({"stmt": {"sql": "UPDATE t SET x = 1"}}),
        ),
    ] {
        let r = request_with(
            addr,
            "POST",
            path,
            &[("authorization", &bearer(&ro))],
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
        assert!(
            r.text().contains("read-only"),
            "{path}: {} {}",
            r.status,
            r.text()
        );
    }
    // Every endpoint, for a few of the writes.
    for ep in HTTP_EPS {
        for sql in [
            "INSERT INTO t VALUES (3) RETURNING x",
            "PRAGMA user_version = 5",
            "CREATE TABLE u(y)",
            "BEGIN IMMEDIATE",
        ] {
            run_sql(addr, ep, Some("app"), Some(&bearer(&ro)), sql)
                .await
                .read_only_refusal();
        }
    }

    // The harmless pragmas and reads that ORMs send still work.
    let mut st = Stream::new(&s, "app", &ro);
    for sql in [
        "PRAGMA read_uncommitted",
        "PRAGMA table_info(t)",
        "PRAGMA table_info(\"t\")",
        "PRAGMA main.table_info(t)",
        "PRAGMA table_xinfo(t)",
        "PRAGMA index_list(t)",
        "PRAGMA foreign_key_list(t)",
        "PRAGMA user_version",
        "PRAGMA schema_version",
        "PRAGMA database_list",
        "PRAGMA foreign_keys = ON",
        "SELECT name FROM sqlite_master WHERE type = 'table'",
        "SELECT x FROM v",
        "BEGIN",
        "SELECT count(*) FROM t",
        "COMMIT",
        "BEGIN TRANSACTION READONLY",
        "SELECT 1",
        "ROLLBACK",
    ] {
        match st.exec(sql).await {
            Outcome::Rows(_) => {}
            other => panic!("read-only token refused the harmless {sql:?}: {other:?}"),
        }
    }
    let o = st.exec("PRAGMA table_info(t)").await;
    assert_eq!(o.rows()[0][1], json!("x"));

    // Nothing changed.
    assert_eq!(snapshot(&s, &full).await, before);
    println!("read-only refusals:\n  {}", seen.join("\n  "));
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_cannot_escape_its_database_even_with_full_access() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    let outside = tempfile::tempdir().unwrap();
    let out = |n: &str| outside.path().join(n).display().to_string();
    let data = s.data_dir();
    let other_file = data.join("other/data.db").display().to_string();
    let inside = data.join("app/copy.db").display().to_string();
    let before = tree(&data);
    let cases: Vec<(String, &str)> = vec![
        (format!("ATTACH DATABASE '{other_file}' AS o"), "ATTACH"),
        (format!("ATTACH '{}' AS o", out("new.db")), "ATTACH"),
        ("ATTACH ':memory:' AS mem".into(), "ATTACH"),
        ("ATTACH '' AS tmp".into(), "ATTACH"),
        (format!("ATTACH 'file:{other_file}?mode=ro' AS o"), "ATTACH"),
        ("DETACH DATABASE o".into(), "DETACH"),
        (format!("VACUUM INTO '{}'", out("copy.db")), "VACUUM INTO"),
        (format!("VACUUM INTO '{inside}'"), "VACUUM INTO"),
        (format!("VACUUM main INTO '{other_file}'"), "VACUUM INTO"),
        (
            format!("SELECT load_extension('{}')", out("evil.so")),
            "load_extension",
        ),
        (
            "SELECT load_extension('/usr/lib/x86_64-linux-gnu/libc.so.6')".into(),
            "load_extension",
        ),
        ("PRAGMA journal_mode=DELETE".into(), "journal_mode"),
        ("PRAGMA journal_mode = MEMORY".into(), "journal_mode"),
        ("PRAGMA synchronous = OFF".into(), "synchronous"),
        ("PRAGMA writable_schema = ON".into(), "writable_schema"),
        (
            format!(
                "PRAGMA temp_store_directory = '{}'",
                outside.path().display()
            ),
            "temp_store_directory",
        ),
        (
            format!(
                "CREATE VIRTUAL TABLE f USING fsdir('{}')",
                outside.path().display()
            ),
            "fsdir",
        ),
    ];
    for token in [s.token(&["app"], false), s.admin()] {
        let header = bearer(&token);
        for (sql, mention) in &cases {
            for ep in HTTP_EPS {
                let o = run_sql(addr, ep, Some("app"), Some(&header), sql).await;
                match &o {
                    Outcome::SqlError { code, message }
                        if matches!(code.as_deref(), None | Some("SQLITE_AUTH"))
                            && message.contains(mention) => {}
                    // `fsdir` is not even compiled in on some builds.
                    Outcome::SqlError { message, .. }
                        if *mention == "fsdir" && message.contains("no such module") => {}
                    other => panic!("{ep:?}: {sql}: expected SQLITE_AUTH, got {other:?}"),
                }
            }
        }
        // Inside a batch and a sequence too.
        let mut st = Stream::new(&s, "app", &token);
        let v = st
            .send(json!([
                {"type": "batch", "batch": {"steps": [{"stmt": {"sql": cases[0].0}}]}},
                {"type": "sequence", "sql": format!("SELECT 1; {};", cases[6].0)},
                {"type": "close"},
            ]))
            .await;
        assert_eq!(
            v["results"][0]["response"]["result"]["step_errors"][0]["code"], "SQLITE_AUTH",
            "{v}"
        );
        assert_eq!(v["results"][1]["error"]["code"], "SQLITE_AUTH", "{v}");
    }
    assert!(
        tree(outside.path()).is_empty(),
        "files appeared outside the data dir: {:?}",
        tree(outside.path())
    );
    assert_eq!(tree(&data), before, "the data dir changed");
    assert_eq!(
        run_sql(
            addr,
            Ep::V3,
            Some("app"),
            Some(&bearer(&s.admin())),
            "PRAGMA journal_mode"
        )
        .await
        .rows(),
        &vec![vec![json!("wal")]]
    );
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_names_never_become_paths() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    let root = s.server.dir.path().to_path_buf();
    let data = s.data_dir();
    let before = tree(&root);
    let admin = bearer(&s.admin());
    let full = bearer(&s.token(&["app"], false));
    let body = Ep::V2.body("SELECT 1");
    let mut seen = Vec::new();

    // Names in the path.
    for path in [
        "/db/../v2/pipeline",
        "/db/%2e%2e/v2/pipeline",
        "/db/%2E%2E/v2/pipeline",
        "/dev/..%2f../v2/pipeline",
        "/db/..%2F..%2Fetc/v2/pipeline",
        "/db/.skylite/v2/pipeline",
        "/db/.%2fskylite/v2/pipeline",
        "/db/APP/v2/pipeline",
        "/db/%61pp/v2/pipeline",
        "/db/app%00/v2/pipeline",
        "/db/-app/v2/pipeline",
        "/dev/../../../../tmp/v2/pipeline",
        "/db/a/../../v2/pipeline",
        "/db/nope/v2/pipeline",
        "/db/../db/app/v2/pipeline",
    ] {
        for auth in [&admin, &full] {
            let r = request_with(
                addr,
                "POST",
                path,
                &[("authorization", auth)],
                Some(body.clone()),
            )
            .await;
            let (st, code, msg) = http_error(&r);
            // A token for `app` is refused (403) on any other valid name before the name is
            // looked up, so it cannot learn whether `nope` exists.
            assert!(
                (st, code.as_str()) == (400, "INVALID_DATABASE_NAME")
                    || (st, code.as_str()) == (404, "DATABASE_NOT_FOUND")
                    || (st, code.as_str()) == (404, "NOT_FOUND")
                    || (auth == &full && st == 403),
                "{path}: {st} {code} {msg}"
            );
            if st == 400 {
                assert!(msg.contains("invalid database name"), "{msg}");
            }
            seen.push(format!("{path}: {st} {code}"));
        }
    }
    // Names in the x-namespace header.
    for ns in [
        "../x",
        "a/b",
        "..",
        ".",
        "%2e%2e",
        "/etc",
        "app/../other",
        ".skylite",
        "APP",
        "",
        "app\\..",
        " ../x",
    ] {
        for auth in [&admin, &full] {
            let r = request_with(
                addr,
                "POST",
                "/v2/pipeline",
                &[("authorization", auth), ("x-namespace", ns)],
                Some(body.clone()),
            )
            .await;
            let (st, code, msg) = http_error(&r);
            assert_eq!(
                (st, code.as_str()),
                (400, "INVALID_DATABASE_NAME"),
                "x-namespace {ns:?}: {msg}"
            );
            seen.push(format!("x-namespace {ns:?}: {st} {code}"));
        }
    }
    // Hosts whose first label is no database name never name one: the request goes to
    // `default` (documented: a label that is not an existing database is ignored), which the
    // admin token opens and a token for `app` does not.
    let default_file = data.join("default/data.db");
    for host in [
        "..example.com",
        "../x.example.com",
        "..%2f...example.com",
        ".skylite.example.com",
        "..localhost",
    ] {
        let r = request_with(
            addr,
            "POST",
            "/v2/pipeline",
            &[("authorization", &admin), ("host", host)],
            Some(Ep::V2.body("PRAGMA database_list")),
        )
        .await;
        match outcome(Ep::V2, &r) {
            Outcome::Rows(rows) => {
                assert_eq!(rows[0][1], json!("main"));
                let file = std::path::PathBuf::from(rows[0][2].as_str().unwrap());
                assert_eq!(
                    file.canonicalize().unwrap(),
                    default_file.canonicalize().unwrap(),
                    "host {host:?}"
                );
                seen.push(format!("Host {host:?} (admin): served by default"));
            }
            Outcome::Refused { status, code, .. } => {
                assert!(
                    status == 400 || status == 404,
                    "host {host:?}: {status} {code}"
                );
                seen.push(format!("Host {host:?} (admin): {status} {code}"));
            }
            other => panic!("host {host:?}: {other:?}"),
        }
        let r = request_with(
            addr,
            "POST",
            "/v2/pipeline",
            &[("authorization", &full), ("host", host)],
            Some(body.clone()),
        )
        .await;
        let (st, code, _) = http_error(&r);
        assert!(
            st == 403 || st == 400 || st == 404,
            "host {host:?}: {st} {code}"
        );
    }

    // The admin API refuses bad names everywhere it takes one.
    let long64 = "a".repeat(64);
    let bad_names: Vec<&str> = vec![
        "..", "../x", "a/b", ".skylite", "UPPER", &long64, "", ".", "/tmp/x", "..\\x", "a\u{0}b",
        "-x", "_x", "x y", "ü", "%2e%2e", ".trash-x", ".fork-x", "app/..",
    ];
    for name in &bad_names {
        let r = request_with(
            addr,
            "POST",
            "/v1/admin/databases",
            &[("authorization", &admin)],
            Some(serde_json::to_vec(&json!({ "name": name })).unwrap()),
        )
        .await;
        let (st, code, msg) = http_error(&r);
        assert_eq!(
            (st, code.as_str()),
            (400, "INVALID_DATABASE_NAME"),
            "create {name:?}: {msg}"
        );
        // Forking into it.
        let r = request_with(
            addr,
            "POST",
            "/v1/admin/databases/app/fork",
            &[("authorization", &admin)],
            Some(serde_json::to_vec(&json!({ "to": name })).unwrap()),
        )
        .await;
        let (st, code, msg) = http_error(&r);
        assert_eq!(
            (st, code.as_str()),
            (400, "INVALID_DATABASE_NAME"),
            "fork to {name:?}: {msg}"
        );
    }
    seen.push(format!(
        "admin create/fork with {} bad names: 400 INVALID_DATABASE_NAME",
        bad_names.len()
    ));
    for (method, path) in [
        ("GET", "/v1/admin/databases/.."),
        ("GET", "/v1/admin/databases/%2e%2e"),
        ("DELETE", "/v1/admin/databases/%2e%2e"),
        ("DELETE", "/v1/admin/databases/..%2fother"),
        ("DELETE", "/v1/admin/databases/.skylite"),
        ("DELETE", "/v1/admin/databases/%2e%2e%2f%2e%2e"),
        ("POST", "/v1/admin/databases/%2e%2e/fork"),
        ("POST", "/v1/admin/databases/..%2fother/fork"),
    ] {
        let r = request_with(
            addr,
            method,
            path,
            &[("authorization", &admin)],
            (method == "POST").then(|| br#"{"to": "stolen"}"#.to_vec()),
        )
        .await;
        let (st, code, msg) = http_error(&r);
        assert!(
            (st, code.as_str()) == (400, "INVALID_DATABASE_NAME")
                || (st, code.as_str()) == (404, "DATABASE_NOT_FOUND")
                || (st, code.as_str()) == (404, "NOT_FOUND"),
            "{method} {path}: {st} {code} {msg}"
        );
        seen.push(format!("{method} {path}: {st} {code}"));
    }
    // The longest valid name works, in its own folder.
    let long63 = "a".repeat(63);
    let r = request_with(
        addr,
        "POST",
        "/v1/admin/databases",
        &[("authorization", &admin)],
        Some(serde_json::to_vec(&json!({ "name": long63 })).unwrap()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // Nothing appeared but `<data-dir>/<63 a>/`, and nothing was removed.
    let after = tree(&root);
    let added: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    let removed: Vec<&String> = before.iter().filter(|p| !after.contains(p)).collect();
    assert!(removed.is_empty(), "removed: {removed:?}");
    let new_dir = format!("data/{long63}");
    assert!(
        added
            .iter()
            .all(|p| *p == &new_dir || p.starts_with(&format!("{new_dir}/"))),
        "unexpected new files: {added:?}"
    );
    assert!(data.join(&long63).join("data.db").exists());
    assert!(!root.join("x").exists() && !root.join("stolen").exists());
    println!("path traversal:\n  {}", seen.join("\n  "));
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baton_works_only_on_its_own_database_and_never_lends_its_token() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    let both = s.token(&["app", "other"], false);
    // Open a stream on `app` holding no state (its baton would survive anything).
    let mut st = Stream::new(&s, "app", &both);
    st.exec("SELECT 1").await.rows();
    let app_baton = st.baton.clone().unwrap();
    // ... and one holding a transaction.
    let mut tx = Stream::new(&s, "app", &both);
    tx.exec("BEGIN").await.rows();
    tx.exec("INSERT INTO t VALUES (50)").await.rows();
    let tx_baton = tx.baton.clone().unwrap();

    for baton in [&app_baton, &tx_baton] {
        for path in [
            "/db/other/v3/pipeline",
            "/db/other/v2/pipeline",
            "/v3/pipeline",
        ] {
            let r = request_with(
                addr,
                "POST",
                path,
                &[(
                    "authorization",
                    &bearer(&if path == "/v3/pipeline" {
                        s.admin()
                    } else {
                        both.clone()
                    }),
                )],
                Some(
                    serde_json::to_vec(&json!({"baton": baton, "requests": [
                        {"type": "execute", "stmt": {"sql": "SELECT count(*) FROM t"}}
                    ]}))
                    .unwrap(),
                ),
            )
            .await;
            let (st, code, msg) = http_error(&r);
            assert_eq!((st, code.as_str()), (400, "BATON_INVALID"), "{path}: {msg}");
        }
        let r = request_with(
            addr,
            "POST",
            "/db/other/v3/cursor",
            &[("authorization", &bearer(&both))],
            Some(
                serde_json::to_vec(&json!({"baton": baton, "batch": {"steps": [
                    {"stmt": {"sql": "SELECT 1"}}
                ]}}))
                .unwrap(),
            ),
        )
        .await;
        let (st, code, _) = http_error(&r);
        assert_eq!((st, code.as_str()), (400, "BATON_INVALID"));
        // A baton is no credential: without a token for `app` it is refused before it is read.
        for (auth, status, code) in [
            (None, 401, "AUTH_JWT_MISSING"),
            (
                Some(bearer(&s.token(&["other"], false))),
                403,
                "AUTH_DATABASE_FORBIDDEN",
            ),
        ] {
            let mut headers = Vec::new();
            if let Some(a) = &auth {
                headers.push(("authorization", a.as_str()));
            }
            let r = request_with(
                addr,
                "POST",
                "/db/app/v3/pipeline",
                &headers,
                Some(
                    serde_json::to_vec(&json!({"baton": baton, "requests": [
                        {"type": "execute", "stmt": {"sql": "DELETE FROM t"}}
                    ]}))
                    .unwrap(),
                ),
            )
            .await;
            let (st, co, _) = http_error(&r);
            assert_eq!((st, co.as_str()), (status, code));
        }
    }
    // A baton is bound to the token that opened its stream: another token, even one that may
    // use `app`, cannot continue it.
    for other in [s.token(&["app"], true), s.token(&["app"], false)] {
        let r = request_with(
            addr,
            "POST",
            "/db/app/v3/pipeline",
            &[("authorization", &bearer(&other))],
            Some(
                serde_json::to_vec(&json!({"baton": app_baton, "requests": [
                    {"type": "execute", "stmt": {"sql": "INSERT INTO t VALUES (3)"}}
                ]}))
                .unwrap(),
            ),
        )
        .await;
        let (st, code, _) = http_error(&r);
        assert_eq!((st, code.as_str()), (400, "BATON_INVALID"));
    }
    assert_eq!(
        st.exec("SELECT count(*) FROM t").await.rows(),
        &vec![vec![json!(2)]]
    );
    // The transaction's stream (its baton was refused elsewhere) is intact on its own database.
    tx.exec("COMMIT").await.rows();
    assert_eq!(
        tx.exec("SELECT count(*) FROM t").await.rows(),
        &vec![vec![json!(3)]]
    );
    // `other` is untouched.
    assert_eq!(
        run_sql(
            addr,
            Ep::V3,
            Some("other"),
            Some(&bearer(&both)),
            "SELECT count(*) FROM t"
        )
        .await
        .rows(),
        &vec![vec![json!(2)]]
    );
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_token_nothing_is_learnt_about_database_names() {
    let s = AuthServer::start().await;
    let addr = s.addr();
    // Whether a database exists, or a name is valid, is nobody's business before the token
    // is checked: every one of these is the same 401.
    for auth in [None, Some("Bearer garbage"), Some("Basic eHl6")] {
        for path in [
            "/db/app/v2/pipeline",
            "/db/nope/v2/pipeline",
            "/db/../v2/pipeline",
            "/db/APP/v3/cursor",
            "/v2/pipeline",
        ] {
            for ns in [None, Some("nope"), Some("../x")] {
                let mut headers = Vec::new();
                if let Some(a) = auth {
                    headers.push(("authorization", a));
                }
                if let Some(ns) = ns {
                    headers.push(("x-namespace", ns));
                }
                let r =
                    request_with(addr, "POST", path, &headers, Some(Ep::V2.body("SELECT 1"))).await;
                let (st, code, msg) = http_error(&r);
                assert_eq!(st, 401, "{auth:?} {path} x-namespace {ns:?}: {code} {msg}");
                assert!(code.starts_with("AUTH_"), "{code}");
            }
        }
    }
    // With a valid token, the usual answers.
    let full = bearer(&s.token(&["app"], false));
    let r = request_with(
        addr,
        "POST",
        "/db/../v2/pipeline",
        &[("authorization", &full)],
        Some(Ep::V2.body("SELECT 1")),
    )
    .await;
    assert_eq!(http_error(&r).1, "INVALID_DATABASE_NAME");
    assert!(!s.data_dir().join("nope").exists());
}

// A read-only token reads every pragma, including `PRAGMA journal_mode`, which SQLite itself
// reports as a writing statement (the engine knows the bare question only reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_can_read_every_pragma() {
    let s = AuthServer::start().await;
    let ro = bearer(&s.token(&["app"], true));
    let mut refused = Vec::new();
    for sql in [
        "PRAGMA journal_mode",
        "PRAGMA main.journal_mode",
        "PRAGMA locking_mode",
        "PRAGMA synchronous",
        "PRAGMA wal_autocheckpoint",
        "PRAGMA journal_size_limit",
        "PRAGMA mmap_size",
        "PRAGMA busy_timeout",
        "PRAGMA cache_size",
        "PRAGMA page_size",
        "PRAGMA page_count",
        "PRAGMA encoding",
        "PRAGMA auto_vacuum",
        "PRAGMA foreign_keys",
        "PRAGMA recursive_triggers",
        "PRAGMA temp_store",
        "PRAGMA query_only",
        "PRAGMA data_version",
        "PRAGMA freelist_count",
        "PRAGMA compile_options",
    ] {
        let o = run_sql(s.addr(), Ep::V3, Some("app"), Some(&ro), sql).await;
        if !matches!(o, Outcome::Rows(_)) {
            refused.push(format!("{sql}: {}", short(&o)));
        }
    }
    assert!(refused.is_empty(), "refused reads: {refused:#?}");
}
