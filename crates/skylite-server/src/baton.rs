//! Batons: the unforgeable tokens that tie Hrana-over-HTTP requests to a stream.
//!
//! A baton is `base64url(stream_id ‖ seq ‖ flags ‖ HMAC-SHA256(key, scope ‖ principal ‖
//! stream_id ‖ seq ‖ flags)[..16])`. The sequence number makes every baton single-use (the
//! stream expects exactly the next one), the scope binds it to one database, the principal
//! binds it to the credentials that opened the stream (a baton leaked from one token does not
//! work with another, even one with the same rights), and the `STATEFUL` flag records whether
//! the stream held state (a transaction, stored SQL, connection settings) when the baton was
//! issued. The flag is what lets a client go on after the stream expired or the server
//! restarted: a baton that is authentic but unknown and not stateful simply resumes a fresh
//! stream; a stateful one gets `STREAM_EXPIRED`, because its state is gone.
//!
//! The key lives in the data folder (`.skylite/baton.key`), so batons survive restarts.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
const BODY_LEN: usize = 8 + 8 + 1;

/// Flag bit: the stream held state when this baton was issued.
pub const STATEFUL: u8 = 1;

/// What a valid baton says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatonClaims {
    /// The stream.
    pub stream_id: u64,
    /// Which request of the stream it authorizes.
    pub seq: u64,
    /// Whether the stream held state.
    pub stateful: bool,
}

/// Why a baton was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatonError {
    /// Not a baton this server could have issued (bad encoding, bad length, bad signature).
    #[error(
        "invalid baton: it was not issued by this server for this database and these \
         credentials (a stream continues only with the token that opened it)"
    )]
    Invalid,
}

/// The secret that signs batons.
pub struct BatonKey {
    key: [u8; KEY_LEN],
}

impl BatonKey {
    /// Loads the key from `path`, creating it (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> std::io::Result<BatonKey> {
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() == KEY_LEN => {
                let mut key = [0u8; KEY_LEN];
                key.copy_from_slice(&bytes);
                return Ok(BatonKey { key });
            }
            Ok(_) => {
                tracing::warn!(path = %path.display(), "baton key has the wrong length; replacing it");
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let key = BatonKey::random()?;
        if let Some(dir) = path.parent() {
            skylite_engine::fs_durable::create_dir_all(dir)?;
        }
        // Durable before the first baton is signed with it: a key lost to a power loss would
        // invalidate every baton handed out since.
        skylite_engine::fs_durable::write_file(path, &key.key, 0o600)?;
        Ok(key)
    }

    /// A fresh random key (not persisted).
    pub fn random() -> std::io::Result<BatonKey> {
        let mut key = [0u8; KEY_LEN];
        getrandom::getrandom(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(BatonKey { key })
    }

    fn mac(&self, scope: &str, principal: &[u8], body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        // Length prefixes keep (scope, principal) pairs from running into each other.
        mac.update(&(scope.len() as u64).to_le_bytes());
        mac.update(scope.as_bytes());
        mac.update(&(principal.len() as u64).to_le_bytes());
        mac.update(principal);
        mac.update(body);
        mac
    }

    fn tag(&self, scope: &str, principal: &[u8], body: &[u8]) -> [u8; TAG_LEN] {
        let full = self.mac(scope, principal, body).finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// Issues a baton for a stream of database `scope` opened by `principal` (a stable id of
    /// the caller's credentials).
    pub fn encode(&self, scope: &str, principal: &[u8], claims: BatonClaims) -> String {
        let mut raw = [0u8; BODY_LEN + TAG_LEN];
        raw[..8].copy_from_slice(&claims.stream_id.to_le_bytes());
        raw[8..16].copy_from_slice(&claims.seq.to_le_bytes());
        raw[16] = if claims.stateful { STATEFUL } else { 0 };
        let tag = self.tag(scope, principal, &raw[..BODY_LEN]);
        raw[BODY_LEN..].copy_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a baton presented by `principal` on database `scope` and returns what it says.
    pub fn decode(
        &self,
        scope: &str,
        principal: &[u8],
        baton: &str,
    ) -> Result<BatonClaims, BatonError> {
        let raw = URL_SAFE_NO_PAD
            .decode(baton.trim())
            .map_err(|_| BatonError::Invalid)?;
        if raw.len() != BODY_LEN + TAG_LEN {
            return Err(BatonError::Invalid);
        }
        self.mac(scope, principal, &raw[..BODY_LEN])
            .verify_truncated_left(&raw[BODY_LEN..])
            .map_err(|_| BatonError::Invalid)?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&raw[..8]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&raw[8..16]);
        Ok(BatonClaims {
            stream_id: u64::from_le_bytes(id),
            seq: u64::from_le_bytes(seq),
            stateful: raw[16] & STATEFUL != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let key = BatonKey::random().unwrap();
        let claims = BatonClaims {
            stream_id: 42,
            seq: 7,
            stateful: true,
        };
        let baton = key.encode("default", b"alice", claims);
        assert_eq!(key.decode("default", b"alice", &baton), Ok(claims));
        // Another database's scope does not accept it.
        assert_eq!(
            key.decode("other", b"alice", &baton),
            Err(BatonError::Invalid)
        );
        // Nor another principal.
        assert_eq!(
            key.decode("default", b"bob", &baton),
            Err(BatonError::Invalid)
        );
        assert_eq!(key.decode("default", b"", &baton), Err(BatonError::Invalid));
        // Flipping any character breaks it.
        let mut bytes = baton.clone().into_bytes();
        bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        assert_eq!(
            key.decode("default", b"alice", &forged),
            Err(BatonError::Invalid)
        );
        // Another key does not accept it.
        let other = BatonKey::random().unwrap();
        assert_eq!(
            other.decode("default", b"alice", &baton),
            Err(BatonError::Invalid)
        );
        assert_eq!(
            key.decode("default", b"alice", "not a baton"),
            Err(BatonError::Invalid)
        );
        assert_eq!(
            key.decode("default", b"alice", ""),
            Err(BatonError::Invalid)
        );
    }

    #[test]
    fn key_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".skylite/baton.key");
        let a = BatonKey::load_or_create(&path).unwrap();
        let b = BatonKey::load_or_create(&path).unwrap();
        let claims = BatonClaims {
            stream_id: 1,
            seq: 1,
            stateful: false,
        };
        assert_eq!(
            b.decode("x", b"p", &a.encode("x", b"p", claims)),
            Ok(claims)
        );
    }
}

/// Property tests: batons (`BatonKey::decode`) on arbitrary and mutated text: never a panic,
/// never a forged baton accepted, and what is issued round-trips only for its own database and
/// key. Cases come from `PROPTEST_CASES` (default 512); `scripts/fuzz.sh` runs many more.
#[cfg(test)]
mod props {
    use proptest::prelude::*;
    use proptest::test_runner::Config;

    use super::*;

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

    fn claims() -> impl Strategy<Value = BatonClaims> {
        (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(stream_id, seq, stateful)| {
            BatonClaims {
                stream_id,
                seq,
                stateful,
            }
        })
    }

    fn scope() -> impl Strategy<Value = String> {
        "[a-z0-9_-]{1,12}"
    }

    /// Character edits of a baton: replacement by base64url or other characters, insertion,
    /// removal, truncation.
    fn baton_edits() -> impl Strategy<Value = Vec<(u8, usize, char)>> {
        let ch = prop_oneof![
            8 => proptest::sample::select(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                    .chars()
                    .collect::<Vec<_>>()
            ),
            1 => proptest::sample::select(vec!['=', '+', '/', '.', ' ', '\0', 'é']),
            1 => any::<char>(),
        ];
        proptest::collection::vec((0..4u8, any::<usize>(), ch), 1..4)
    }

    fn edit(baton: &str, edits: &[(u8, usize, char)]) -> String {
        let mut chars: Vec<char> = baton.chars().collect();
        for &(kind, i, c) in edits {
            let len = chars.len();
            match kind {
                0 if len > 0 => chars[i % len] = c,
                1 => chars.insert(i % (len + 1), c),
                2 if len > 0 => {
                    chars.remove(i % len);
                }
                3 => chars.truncate(i % (len + 1)),
                _ => {}
            }
        }
        chars.into_iter().collect()
    }

    proptest! {
        #![proptest_config(config(512))]

        #[test]
        fn baton_round_trips_for_its_own_scope_principal_and_key_only(
            c in claims(),
            scope in scope(),
            other in scope(),
            principal in any::<[u8; 16]>(),
            other_principal in any::<[u8; 16]>(),
        ) {
            let key = BatonKey::random().unwrap();
            let baton = key.encode(&scope, &principal, c);
            prop_assert_eq!(key.decode(&scope, &principal, &baton), Ok(c));
            if other != scope {
                prop_assert!(key.decode(&other, &principal, &baton).is_err());
            }
            if other_principal != principal {
                prop_assert!(key.decode(&scope, &other_principal, &baton).is_err());
            }
            let stranger = BatonKey::random().unwrap();
            prop_assert!(stranger.decode(&scope, &principal, &baton).is_err());
        }

        #[test]
        fn a_modified_baton_is_refused(c in claims(), scope in scope(), edits in baton_edits()) {
            let key = BatonKey::random().unwrap();
            let principal = [7u8; 16];
            let baton = key.encode(&scope, &principal, c);
            let modified = edit(&baton, &edits);
            if let Ok(got) = key.decode(&scope, &principal, &modified) {
                // Only surrounding whitespace may differ, and then it says the same.
                prop_assert_eq!(modified.trim(), baton.as_str());
                prop_assert_eq!(got, c);
            }
        }

        #[test]
        fn arbitrary_text_is_never_a_baton(
            text in prop_oneof![".{0,64}", "[A-Za-z0-9_-]{0,60}", "[A-Za-z0-9_-]{44}"],
            scope in scope(),
        ) {
            let key = BatonKey::random().unwrap();
            prop_assert!(key.decode(&scope, &[0u8; 16], &text).is_err());
        }
    }
}
