//! Tokens end to end through the public API: minting and verifying, every way a token is
//! refused (with its status and message), sqld-shaped tokens, key files, key pairs on disk,
//! revocation and reloading.

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::Signer as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use skylite_auth::*;

const NOW: i64 = 1_800_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT built by hand: any header, any payload, signed with `key` (EdDSA) as a foreign minter
/// (sqld's tooling, Turso) would.
fn jwt(header: &Value, payload: &Value, key: &SigningKey) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

fn eddsa(payload: Value, key: &SigningKey) -> String {
    jwt(&json!({"alg": "EdDSA", "typ": "JWT"}), &payload, key)
}

fn auth_with(keys: &[&SigningKey]) -> Authenticator {
    Authenticator::with_keys(
        keys.iter().map(|k| k.verifying_key()).collect(),
        None,
        false,
    )
}

fn refuse(auth: &Authenticator, token: &str) -> AuthError {
    auth.authenticate_at(Some(token), NOW).unwrap_err()
}

#[test]
fn round_trip_mint_verify_authorize() {
    let k = key(1);
    let auth = auth_with(&[&k]);
    let spec = TokenSpec {
        databases: vec!["app".into()],
        lifetime: Some(std::time::Duration::from_secs(3600)),
        ..TokenSpec::default()
    };
    let (token, claims) = mint(&k, &spec).unwrap();
    assert_eq!(claims.id.as_deref(), Some("app"));
    assert_eq!(claims.a, Some(Level::ReadWrite));
    assert_eq!(claims.jti.as_ref().unwrap().len(), 32);
    assert_eq!(claims.exp, Some(claims.iat.unwrap() + 3600));
    let p = auth.authenticate(Some(&token)).unwrap();
    assert_eq!(p.claims(), Some(&claims));
    assert_eq!(p.jti(), claims.jti.as_deref());
    assert_eq!(p.authorize("app", Access::Write), Ok(Grant::ReadWrite));
    assert!(matches!(
        p.authorize("other", Access::Read),
        Err(AuthError::WrongDatabase { .. })
    ));
    assert_eq!(p.authorize_admin(), Err(AuthError::NotAdmin));
    // The same token again comes from the cache and says the same.
    let again = auth.authenticate(Some(&token)).unwrap();
    assert_eq!(again.claims(), Some(&claims));
    // Header form, any case of the scheme.
    for h in [format!("Bearer {token}"), format!("bearer  {token} ")] {
        assert!(auth.authenticate_header(Some(&h)).is_ok(), "{h}");
    }
}

#[test]
fn minted_read_only_multi_and_admin_tokens() {
    let k = key(1);
    let auth = auth_with(&[&k]);
    let ro = TokenSpec {
        databases: vec!["a".into(), "b".into()],
        read_only: true,
        ..TokenSpec::default()
    };
    let (token, claims) = mint(&k, &ro).unwrap();
    assert_eq!(claims.id, None);
    assert_eq!(claims.exp, None);
    let p = auth.authenticate(Some(&token)).unwrap();
    assert_eq!(p.authorize("a", Access::Read), Ok(Grant::ReadOnly));
    assert_eq!(p.authorize("b", Access::Read), Ok(Grant::ReadOnly));
    let err = p.authorize("b", Access::Write).unwrap_err();
    assert_eq!(
        err.to_string(),
        "read-only token cannot write (database `b`)"
    );
    assert_eq!(err.status(), 403);
    assert!(p.authorize("c", Access::Read).is_err());

    let admin = TokenSpec {
        admin: true,
        ..TokenSpec::default()
    };
    let (token, claims) = mint(&k, &admin).unwrap();
    assert!(claims.skylite_admin);
    let p = auth.authenticate(Some(&token)).unwrap();
    assert_eq!(p.authorize_admin(), Ok(()));
    assert_eq!(p.authorize("anything", Access::Write), Ok(Grant::ReadWrite));

    let bad = TokenSpec {
        admin: true,
        read_only: true,
        ..TokenSpec::default()
    };
    assert!(mint(&k, &bad).is_err());
    assert!(mint(&k, &TokenSpec::default()).is_err());
}

#[test]
fn missing_token_is_401() {
    let auth = auth_with(&[&key(1)]);
    for t in [None, Some(""), Some("   ")] {
        let err = auth.authenticate(t).unwrap_err();
        assert_eq!(err, AuthError::Missing);
        assert_eq!(err.status(), 401);
    }
    for h in [None, Some(""), Some("Bearer"), Some("Bearer   ")] {
        assert_eq!(
            auth.authenticate_header(h).unwrap_err(),
            AuthError::Missing,
            "{h:?}"
        );
    }
    let err = auth
        .authenticate_header(Some("Basic dXNlcjpwdw=="))
        .unwrap_err();
    assert_eq!(err, AuthError::UnsupportedScheme("Basic".into()));
    assert_eq!(err.status(), 401);
}

#[test]
fn garbage_is_401_malformed() {
    let k = key(1);
    let auth = auth_with(&[&k]);
    let good = eddsa(json!({"id": "a"}), &k);
    let parts: Vec<&str> = good.split('.').collect();
    let long = "a".repeat(20_000);
    let cases = [
        "abc".to_owned(),
        "none".to_owned(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        "!!!.???.***".to_owned(),
        format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"[1,2]"), parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], b64(b"short")),
        format!("{}.{}.{}", b64(br#"{"typ":"JWT"}"#), parts[1], parts[2]),
        format!("{}.{}.{}", b64(br#"{"alg":5}"#), parts[1], parts[2]),
        long,
    ];
    for t in &cases {
        let err = refuse(&auth, t);
        assert!(matches!(err, AuthError::Malformed(_)), "{t}: {err:?}");
        assert_eq!(err.status(), 401);
        assert_eq!(err.code(), "AUTH_JWT_INVALID");
        assert!(err.to_string().starts_with("malformed token: "));
    }
    // A validly signed token whose payload is not JSON claims.
    let input = format!("{}.{}", parts[0], b64(b"\"a string\""));
    let sig = b64(&k.sign(input.as_bytes()).to_bytes());
    assert!(matches!(
        refuse(&auth, &format!("{input}.{sig}")),
        AuthError::Malformed(_)
    ));
    let signed_bad_claim = eddsa(json!({"a": "admin"}), &k);
    assert!(matches!(
        refuse(&auth, &signed_bad_claim),
        AuthError::Malformed(_)
    ));
    // An unknown critical extension.
    let crit = jwt(
        &json!({"alg": "EdDSA", "crit": ["b64"], "b64": false}),
        &json!({"id": "a"}),
        &k,
    );
    assert!(matches!(refuse(&auth, &crit), AuthError::Malformed(_)));
}

#[test]
fn other_algorithms_are_refused() {
    let k = key(1);
    let auth = auth_with(&[&k]);
    let payload = b64(json!({"skylite_admin": true}).to_string().as_bytes());

    // alg none, with and without a signature part.
    for alg in ["none", "None", "NONE"] {
        let header = b64(json!({"alg": alg}).to_string().as_bytes());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}.AAAA"),
        ] {
            let err = refuse(&auth, &token);
            assert_eq!(err, AuthError::UnsupportedAlgorithm(alg.into()));
            assert_eq!(err.status(), 401);
        }
    }

    // HS256 keyed with the public key (the classic confusion attack), in every form an
    // attacker could pick: raw bytes, base64url text, PEM text.
    let public = k.verifying_key();
    let pem = public.to_public_key_pem(LineEnding::LF).unwrap();
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    for secret in [
        public.as_bytes().to_vec(),
        raw_public_key(&public).into_bytes(),
        pem.into_bytes(),
    ] {
        let input = format!("{header}.{payload}");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
        mac.update(input.as_bytes());
        let token = format!("{input}.{}", b64(&mac.finalize().into_bytes()));
        assert_eq!(
            refuse(&auth, &token),
            AuthError::UnsupportedAlgorithm("HS256".into())
        );
    }

    // Any other name, even with a genuine Ed25519 signature under it.
    for alg in ["RS256", "ES256", "PS256", "HS512", "Ed25519", "eddsa"] {
        let token = jwt(&json!({"alg": alg}), &json!({"id": "a"}), &k);
        let err = refuse(&auth, &token);
        assert_eq!(err, AuthError::UnsupportedAlgorithm(alg.into()));
        assert!(err.to_string().contains("EdDSA"));
    }
}

#[test]
fn bad_signatures_are_401() {
    let k = key(1);
    let other = key(2);
    let auth = auth_with(&[&k]);
    let good = eddsa(json!({"id": "a"}), &k);
    assert!(auth.authenticate_at(Some(&good), NOW).is_ok());

    // Signed by a key we do not trust.
    let err = refuse(&auth, &eddsa(json!({"id": "a"}), &other));
    assert_eq!(err, AuthError::BadSignature);
    assert_eq!(err.status(), 401);
    assert_eq!(
        err.to_string(),
        "token signature does not match any trusted key"
    );

    // A flipped signature byte.
    let (input, sig) = good.rsplit_once('.').unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    raw[10] ^= 1;
    assert_eq!(
        refuse(&auth, &format!("{input}.{}", b64(&raw))),
        AuthError::BadSignature
    );

    // The payload swapped for another, the signature kept.
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(json!({"skylite_admin": true}).to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(refuse(&auth, &forged), AuthError::BadSignature);

    // No key at all trusts nothing.
    let none = Authenticator::with_keys(Vec::new(), None, false);
    assert_eq!(
        none.authenticate_at(Some(&good), NOW).unwrap_err(),
        AuthError::BadSignature
    );
}

#[test]
fn several_keys_any_verifies() {
    let (k1, k2, k3) = (key(1), key(2), key(3));
    let auth = auth_with(&[&k1, &k2, &k3]);
    for k in [&k1, &k2, &k3] {
        assert!(auth
            .authenticate_at(Some(&eddsa(json!({"id": "a"}), k)), NOW)
            .is_ok());
    }
    assert_eq!(
        refuse(&auth, &eddsa(json!({"id": "a"}), &key(4))),
        AuthError::BadSignature
    );
}

#[test]
fn expiry_and_not_before() {
    let k = key(1);
    let auth = auth_with(&[&k]);
    let expired = eddsa(json!({"id": "a", "exp": NOW - 31}), &k);
    let err = refuse(&auth, &expired);
    assert_eq!(err, AuthError::Expired(NOW - 31));
    assert_eq!(err.status(), 401);
    assert_eq!(err.code(), "AUTH_JWT_EXPIRED");
    assert_eq!(err.to_string(), "token expired at 2027-01-15T07:59:29Z");

    // Within the 30 s leeway, either side.
    assert!(auth
        .authenticate_at(Some(&eddsa(json!({"id": "a", "exp": NOW - 29}), &k)), NOW)
        .is_ok());
    assert!(auth
        .authenticate_at(Some(&eddsa(json!({"id": "a", "nbf": NOW + 29}), &k)), NOW)
        .is_ok());

    let early = eddsa(json!({"id": "a", "nbf": NOW + 31}), &k);
    let err = refuse(&auth, &early);
    assert_eq!(err, AuthError::NotYetValid(NOW + 31));
    assert_eq!(err.status(), 401);
    assert_eq!(
        err.to_string(),
        "token is not valid before 2027-01-15T08:00:31Z"
    );

    // A cached token still expires.
    let soon = eddsa(json!({"id": "a", "exp": NOW + 60}), &k);
    assert!(auth.authenticate_at(Some(&soon), NOW).is_ok());
    assert_eq!(
        auth.authenticate_at(Some(&soon), NOW + 100).unwrap_err(),
        AuthError::Expired(NOW + 60)
    );
    // Fractional dates (allowed by RFC 7519).
    let frac = eddsa(json!({"id": "a", "exp": (NOW + 100) as f64 + 0.5}), &k);
    assert!(auth.authenticate_at(Some(&frac), NOW).is_ok());
}

#[test]
fn revoked_jti_is_401_and_others_live_on() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let list = RevocationList::for_data_dir(dir.path()).unwrap();
    let auth = Authenticator::with_keys(vec![k.verifying_key()], Some(list), false);
    let spec = TokenSpec {
        databases: vec!["a".into()],
        ..TokenSpec::default()
    };
    let (t1, c1) = mint(&k, &spec).unwrap();
    let (t2, _) = mint(&k, &spec).unwrap();
    assert!(auth.authenticate(Some(&t1)).is_ok()); // now cached
    let jti = c1.jti.clone().unwrap();
    assert!(auth.revoke(&jti, c1.exp).unwrap());
    let err = auth.authenticate(Some(&t1)).unwrap_err();
    assert_eq!(err, AuthError::Revoked(jti.clone()));
    assert_eq!(err.status(), 401);
    assert_eq!(err.to_string(), format!("token `{jti}` has been revoked"));
    assert!(auth.authenticate(Some(&t2)).is_ok());
    // Persisted: a new list over the same folder knows it.
    let again = RevocationList::for_data_dir(dir.path()).unwrap();
    assert!(again.is_revoked(&jti));
}

#[test]
fn empty_claims_get_nothing_unless_legacy() {
    let k = key(1);
    let strict = auth_with(&[&k]);
    let legacy = Authenticator::with_keys(vec![k.verifying_key()], None, true);
    for payload in [json!({}), json!({"a": "rw"}), json!({"exp": NOW + 10})] {
        let token = eddsa(payload, &k);
        let p = strict.authenticate_at(Some(&token), NOW).unwrap();
        let err = p.authorize("default", Access::Read).unwrap_err();
        assert_eq!(err, AuthError::Unscoped);
        assert_eq!(err.status(), 403);
        assert!(err.to_string().contains("`id`"));
        let p = legacy.authenticate_at(Some(&token), NOW).unwrap();
        assert_eq!(p.authorize("default", Access::Write), Ok(Grant::ReadWrite));
        assert_eq!(p.authorize_admin(), Err(AuthError::NotAdmin));
    }
}

#[test]
fn disabled_allows_everything() {
    let auth = Authenticator::disabled();
    assert!(auth.is_disabled());
    for t in [None, Some("garbage")] {
        let p = auth.authenticate(t).unwrap();
        assert!(p.is_unrestricted());
        assert_eq!(p.authorize("x", Access::Write), Ok(Grant::ReadWrite));
        assert_eq!(p.authorize_admin(), Ok(()));
    }
}

/// Tokens shaped exactly as sqld's tooling writes them: header `{"alg":"EdDSA"}` without `typ`,
/// `p` with `ns` lists (and the attach variants), the public key given as PEM or raw base64url.
#[test]
fn sqld_style_tokens_verify() {
    let k = key(7);
    let pem = k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    let keys = parse_public_keys(&pem).unwrap();
    let auth = Authenticator::with_keys(keys, None, false);
    let header = json!({"alg": "EdDSA"});

    let t = jwt(
        &header,
        &json!({"p": {"ro": {"ns": ["example1a", "example1b", "example1c"]}}, "exp": 10017148528533_i64}),
        &k,
    );
    let p = auth.authenticate_at(Some(&t), NOW).unwrap();
    assert_eq!(p.authorize("example1b", Access::Read), Ok(Grant::ReadOnly));
    assert!(p.authorize("example1b", Access::Write).is_err());
    assert!(p.authorize("example2", Access::Read).is_err());

    let t = jwt(
        &header,
        &json!({"id": "foobar", "a": "ro", "p": {"rw": {"ns": ["foo"]}, "roa": {"ns": ["bar"]}}}),
        &k,
    );
    let p = auth.authenticate_at(Some(&t), NOW).unwrap();
    // `a: ro` caps `rw` here (sqld would let foo write: skylite is stricter).
    assert_eq!(p.authorize("foo", Access::Read), Ok(Grant::ReadOnly));
    assert_eq!(p.authorize("bar", Access::Read), Ok(Grant::ReadOnly));
    assert!(p.authorize("foobar", Access::Read).is_err());

    // Legacy single-database token, as Turso's older tokens look (iat, no p).
    let t = jwt(
        &header,
        &json!({"a": "rw", "iat": NOW - 100, "id": "db1"}),
        &k,
    );
    let p = auth.authenticate_at(Some(&t), NOW).unwrap();
    assert_eq!(p.authorize("db1", Access::Write), Ok(Grant::ReadWrite));
    let t = jwt(&header, &json!({"id": "db1"}), &k);
    let p = auth.authenticate_at(Some(&t), NOW).unwrap();
    assert_eq!(p.authorize("db1", Access::Write), Ok(Grant::ReadWrite));

    // Padded base64url segments are accepted too.
    let input = format!(
        "{}.{}",
        URL_SAFE.encode(br#"{"alg":"EdDSA"}"#),
        URL_SAFE.encode(br#"{"id":"db1","a":"ro"}"#)
    );
    let sig = URL_SAFE.encode(k.sign(input.as_bytes()).to_bytes());
    let t = format!("{input}.{sig}");
    assert!(t.contains('='));
    let p = auth.authenticate_at(Some(&t), NOW).unwrap();
    assert_eq!(p.authorize("db1", Access::Read), Ok(Grant::ReadOnly));
}

#[test]
fn key_files_pem_raw_mixed() {
    let (k1, k2, k3) = (key(1), key(2), key(3));
    let pem = |k: &SigningKey| k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    let raw = |k: &SigningKey| raw_public_key(&k.verifying_key());
    let want = vec![k1.verifying_key(), k2.verifying_key(), k3.verifying_key()];

    // Several PEM blocks, with and without newlines between them.
    let text = format!("{}{}{}", pem(&k1), pem(&k2), pem(&k3));
    assert_eq!(parse_public_keys(&text).unwrap(), want);
    let glued = text.replace("-----\n-----", "----------");
    assert_eq!(parse_public_keys(&glued).unwrap(), want);
    let no_final_newline = pem(&k1).trim_end().to_owned();
    assert_eq!(parse_public_keys(&no_final_newline).unwrap(), want[..1]);

    // Raw base64url keys, one per line, with comments, blank lines, padding, standard base64.
    let padded = URL_SAFE.encode(k2.verifying_key().as_bytes());
    let standard = STANDARD.encode(k3.verifying_key().as_bytes());
    let text = format!(
        "# rotated keys\n{}\n\n  {padded}  \r\n{standard}\n",
        raw(&k1)
    );
    assert_eq!(parse_public_keys(&text).unwrap(), want);
    // No newline at the end, a single key (sqld's own raw form).
    assert_eq!(parse_public_keys(&raw(&k1)).unwrap(), want[..1]);

    // Mixed.
    let text = format!("{}\n{}{}\n", raw(&k1), pem(&k2), raw(&k3));
    assert_eq!(parse_public_keys(&text).unwrap(), want);

    // Refusals, naming the line.
    let private = k1.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let err = parse_public_keys(&format!("{}{private}", pem(&k2))).unwrap_err();
    assert!(
        err.contains("line 4") && err.contains("private key"),
        "{err}"
    );
    let err = parse_public_keys("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
        .unwrap_err();
    assert!(err.contains("CERTIFICATE"), "{err}");
    let err = parse_public_keys(&format!("{}\nnot-a-key\n", raw(&k1))).unwrap_err();
    assert!(err.starts_with("line 2:"), "{err}");
    let err = parse_public_keys(&b64(&[1u8; 31])).unwrap_err();
    assert!(err.contains("31 bytes"), "{err}");
    assert!(parse_public_keys("-----BEGIN PUBLIC KEY-----\nMCow\n").is_err());
    assert_eq!(parse_public_keys("\n# nothing\n").unwrap(), vec![]);

    // On disk: an empty file is refused, a good one loads.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.pem");
    std::fs::write(&path, "# none\n").unwrap();
    assert!(load_public_key_file(&path).is_err());
    std::fs::write(&path, format!("{}{}", pem(&k1), raw(&k2))).unwrap();
    assert_eq!(load_public_key_file(&path).unwrap(), want[..2]);
}

#[test]
fn data_folder_key_pair() {
    let dir = tempfile::tempdir().unwrap();
    let first = load_or_create_keypair(dir.path()).unwrap();
    assert!(first.created);
    assert_eq!(first.private_path, dir.path().join(".skylite/jwt.key"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first.private_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let private = std::fs::read_to_string(&first.private_path).unwrap();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
    let public = std::fs::read_to_string(&first.public_path).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(parse_public_keys(&public).unwrap(), vec![first.verifying()]);
    assert_eq!(
        parse_public_keys(&first.public_raw()).unwrap(),
        vec![first.verifying()]
    );

    let second = load_or_create_keypair(dir.path()).unwrap();
    assert!(!second.created);
    assert_eq!(second.verifying(), first.verifying());

    // keygen refuses to replace a key.
    let out = dir.path().join("out");
    let made = generate_keypair(&out).unwrap();
    assert_eq!(
        load_signing_key(&made.private_path)
            .unwrap()
            .verifying_key(),
        made.verifying()
    );
    assert!(generate_keypair(&out).is_err());
}

#[test]
fn from_config_trusts_data_folder_and_key_files_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let extra = key(9);
    let key_file = dir.path().join("extra.pub");
    std::fs::write(&key_file, raw_public_key(&extra.verifying_key())).unwrap();
    let mut config = AuthConfig::new(dir.path().join("data"));
    config.key_files.push(key_file.clone());
    let auth = Authenticator::from_config(&config).unwrap();
    assert_eq!(auth.key_count(), 2);
    assert!(auth.keypair().unwrap().created);

    let own = load_signing_key(&dir.path().join("data/.skylite/jwt.key")).unwrap();
    let spec = TokenSpec {
        databases: vec!["default".into()],
        ..TokenSpec::default()
    };
    let (t_own, _) = mint(&own, &spec).unwrap();
    let (t_extra, _) = mint(&extra, &spec).unwrap();
    assert!(auth.authenticate(Some(&t_own)).is_ok());
    assert!(auth.authenticate(Some(&t_extra)).is_ok());

    // Rotate: the key file now holds another key; after reload the old one is gone.
    let next = key(10);
    std::fs::write(&key_file, raw_public_key(&next.verifying_key())).unwrap();
    auth.reload().unwrap();
    assert_eq!(
        auth.authenticate(Some(&t_extra)).unwrap_err(),
        AuthError::BadSignature
    );
    let (t_next, _) = mint(&next, &spec).unwrap();
    assert!(auth.authenticate(Some(&t_next)).is_ok());
    assert!(auth.authenticate(Some(&t_own)).is_ok());

    // A broken key file fails the reload and keeps the keys that work.
    std::fs::write(&key_file, "garbage").unwrap();
    assert!(auth.reload().is_err());
    assert!(auth.authenticate(Some(&t_next)).is_ok());

    // A broken key file at start is an error, not a server with fewer keys.
    assert!(Authenticator::from_config(&config).is_err());

    let mut off = AuthConfig::new(dir.path().join("never-made"));
    off.disabled = true;
    assert!(Authenticator::from_config(&off).unwrap().is_disabled());
    assert!(!dir.path().join("never-made").exists());
}

#[test]
fn inspect_decodes_without_verifying() {
    let t = eddsa(json!({"id": "a", "jti": "j1"}), &key(1));
    let (header, payload) = decode_unverified(&t).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(payload["jti"], "j1");
    assert!(decode_unverified("x.y").is_err());
}
