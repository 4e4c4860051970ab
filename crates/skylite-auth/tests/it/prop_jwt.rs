//! Property tests for token verification, the decoder every unauthenticated client reaches
//! (the `Authorization` header, the `jwt` of a WebSocket `hello`):
//! - arbitrary text and arbitrary `Authorization` values never panic and are never accepted;
//! - a valid token modified in any way (flipped, replaced, inserted or removed characters,
//!   truncation, segments swapped between tokens, re-encoded JSON) is refused, or, where the
//!   change is not one the signature covers (base64 padding of the signature), it grants
//!   exactly what the original did;
//! - hand-made tokens with arbitrary headers and payloads, signed with the right key, never
//!   panic and only an `EdDSA` header is ever accepted.
//!
//! Cases per property come from `PROPTEST_CASES` (default small); `scripts/fuzz.sh` runs more.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use proptest::prelude::*;
use proptest::test_runner::Config;
use skylite_auth::*;

const NOW: i64 = 1_800_000_000;

fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The server's key, derived once (deriving an Ed25519 key is slow in a debug build).
fn server_key() -> &'static SigningKey {
    static KEY: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| key(1))
}

fn auth() -> Authenticator {
    Authenticator::with_keys(vec![server_key().verifying_key()], None, false)
}

/// A token minted by the server's own code, and its claims.
fn minted(spec: &TokenSpec) -> (String, Claims) {
    mint(server_key(), spec).expect("mint")
}

fn spec() -> impl Strategy<Value = TokenSpec> {
    prop_oneof![
        (
            proptest::collection::vec("[a-z0-9_-]{1,12}", 1..3),
            any::<bool>()
        )
            .prop_map(|(databases, read_only)| TokenSpec {
                databases,
                read_only,
                ..TokenSpec::default()
            }),
        Just(TokenSpec {
            admin: true,
            ..TokenSpec::default()
        }),
    ]
}

/// Characters a mutation may put into a token: the base64url alphabet, the separators, and a
/// few that must never be accepted.
fn token_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => proptest::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                .chars()
                .collect::<Vec<_>>()
        ),
        1 => proptest::sample::select(vec!['.', '=', '+', '/', ' ', '\t', '\0', 'é', '\u{feff}']),
        1 => any::<char>(),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, char),
    Insert(usize, char),
    Remove(usize),
    Truncate(usize),
    /// Swap two of the three segments.
    SwapSegments(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), token_char()).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<usize>(), token_char()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::Truncate),
        (0..3usize, 0..3usize).prop_map(|(a, b)| Edit::SwapSegments(a, b)),
    ]
}

fn apply(token: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    for e in edits {
        let len = chars.len();
        match e {
            Edit::Replace(i, c) if len > 0 => chars[i % len] = *c,
            Edit::Insert(i, c) => chars.insert(i % (len + 1), *c),
            Edit::Remove(i) if len > 0 => {
                chars.remove(i % len);
            }
            Edit::Truncate(n) => chars.truncate(n % (len + 1)),
            Edit::SwapSegments(a, b) => {
                let s: String = chars.iter().collect();
                let mut parts: Vec<&str> = s.split('.').collect();
                if *a < parts.len() && *b < parts.len() {
                    parts.swap(*a, *b);
                }
                chars = parts.join(".").chars().collect();
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// Checks `token` every way a client can present it; returns the claims if any way accepted it
/// (all ways must agree).
fn accepted(auth: &Authenticator, token: &str) -> Option<Claims> {
    let bare = auth.authenticate_at(Some(token), NOW);
    let verified = verify(
        token,
        &[server_key().verifying_key()],
        NOW,
        DEFAULT_LEEWAY_SECS,
    );
    // Never panics, whatever it says.
    let _ = decode_unverified(token);
    let _ = auth.authenticate_header(Some(&format!("Bearer {token}")));
    let _ = auth.authenticate_header(Some(token));
    match (bare, verified) {
        (Ok(p), Ok(c)) => {
            assert_eq!(
                p.claims(),
                Some(&c),
                "the authenticator and verify disagree"
            );
            Some(c)
        }
        (Err(_), Err(_)) => None,
        (a, b) => panic!(
            "the authenticator and verify disagree on {token:?}: {:?} vs {:?}",
            a.map(|p| p.claims().cloned()),
            b
        ),
    }
}

proptest! {
    // Ed25519 is slow in a debug build: few cases by default, many in scripts/fuzz.sh.
    #![proptest_config(config(48))]

    #[test]
    fn arbitrary_text_is_never_accepted(token in prop_oneof![
        ".{0,64}",
        "[A-Za-z0-9_-]{0,120}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,100}",
        "eyJ[A-Za-z0-9_-]{0,60}\\.eyJ[A-Za-z0-9_-]{0,120}\\.[A-Za-z0-9_-]{86}",
    ]) {
        let auth = auth();
        prop_assert!(accepted(&auth, &token).is_none(), "accepted {:?}", token);
    }

    #[test]
    fn arbitrary_authorization_headers_never_panic(value in ".{0,80}") {
        let auth = auth();
        let result = auth.authenticate_header(Some(&value));
        prop_assert!(result.is_err());
        let err = result.unwrap_err();
        prop_assert!(err.status() == 401 || err.status() == 403);
        prop_assert!(!err.code().as_str().is_empty());
    }

    #[test]
    fn a_modified_token_is_refused_or_grants_exactly_the_same(
        spec in spec(),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let auth = auth();
        let (token, claims) = minted(&spec);
        prop_assert_eq!(accepted(&auth, &token), Some(claims.clone()));
        let modified = apply(&token, &edits);
        if let Some(got) = accepted(&auth, &modified) {
            // Only changes outside the signed bytes can pass (surrounding whitespace, padding of
            // the signature segment); they must not change what the token says.
            prop_assert_eq!(&got, &claims, "{:?} -> {:?}", token, modified);
            let signed_part = |t: &str| t.trim().rsplit_once('.').map(|(input, _)| input.to_owned());
            prop_assert_eq!(signed_part(&modified), signed_part(&token));
        }
    }

    #[test]
    fn segments_of_two_valid_tokens_never_combine(a in spec(), b in spec()) {
        let auth = auth();
        let (ta, ca) = minted(&a);
        let (tb, cb) = minted(&b);
        let pa: Vec<&str> = ta.split('.').collect();
        let pb: Vec<&str> = tb.split('.').collect();
        // Header and payload of one, signature of the other.
        for mixed in [
            format!("{}.{}.{}", pa[0], pb[1], pa[2]),
            format!("{}.{}.{}", pb[0], pa[1], pb[2]),
        ] {
            if let Some(got) = accepted(&auth, &mixed) {
                prop_assert!(got == ca && got == cb, "a spliced token was accepted: {}", mixed);
            }
        }
    }

    #[test]
    fn a_token_signed_by_another_key_is_refused(spec in spec(), seed in 2..=255u8) {
        let auth = auth();
        let (token, _) = mint(&key(seed), &spec).unwrap();
        prop_assert!(accepted(&auth, &token).is_none());
    }

    #[test]
    fn hand_made_tokens_never_panic_and_only_eddsa_passes(
        header in arbitrary_json_object(),
        payload in arbitrary_json_object(),
        alg in prop_oneof![
            Just(Some("EdDSA".to_owned())),
            Just(Some("none".to_owned())),
            Just(Some("HS256".to_owned())),
            Just(Some("eddsa".to_owned())),
            Just(None),
            ".{0,8}".prop_map(Some),
        ],
    ) {
        let auth = auth();
        let mut header = header;
        if let Some(alg) = &alg {
            header.insert("alg".into(), serde_json::Value::String(alg.clone()));
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::Value::Object(header.clone()).to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::Value::Object(payload).to_string())
        );
        let sig = server_key().sign(input.as_bytes());
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        if accepted(&auth, &token).is_some() {
            prop_assert_eq!(alg.as_deref(), Some("EdDSA"));
            prop_assert!(!header.contains_key("crit"));
        }
        // The same with an empty signature, as `alg: none` would send it: never accepted.
        let unsigned = format!("{input}.");
        prop_assert!(accepted(&auth, &unsigned).is_none());
    }
}

fn arbitrary_json_object() -> impl Strategy<Value = serde_json::Map<String, serde_json::Value>> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|i| serde_json::json!(i)),
        any::<u64>().prop_map(|i| serde_json::json!(i)),
        proptest::num::f64::NORMAL.prop_map(|f| serde_json::json!(f)),
        ".{0,10}".prop_map(serde_json::Value::String),
        proptest::sample::select(vec!["rw", "ro", "roa", "rwa", "ddl", "EdDSA", "default"])
            .prop_map(|s| serde_json::Value::String(s.to_owned())),
    ];
    let value = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::vec((key_name(), inner), 0..4)
                .prop_map(|kv| { serde_json::Value::Object(kv.into_iter().collect()) }),
        ]
    });
    proptest::collection::vec((key_name(), value), 0..6).prop_map(|kv| kv.into_iter().collect())
}

fn key_name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "id",
            "a",
            "p",
            "skylite_admin",
            "exp",
            "nbf",
            "iat",
            "jti",
            "rw",
            "ro",
            "ns",
            "typ",
            "crit",
            "kid",
        ])
        .prop_map(str::to_owned),
        "[a-z]{1,6}",
    ]
}

#[test]
fn oversized_tokens_are_refused_without_work() {
    let auth = auth();
    let (token, _) = minted(&TokenSpec {
        databases: vec!["app".into()],
        ..TokenSpec::default()
    });
    // Padding the payload up past the limit: refused as malformed before any verification.
    let huge = format!("{token}{}", "A".repeat(64 * 1024));
    let err = auth.authenticate_at(Some(&huge), NOW).unwrap_err();
    assert_eq!(err.status(), 401);
    let huge_header = format!("Bearer {}", "a.".repeat(1 << 20));
    assert_eq!(
        auth.authenticate_header(Some(&huge_header))
            .unwrap_err()
            .status(),
        401
    );
}
