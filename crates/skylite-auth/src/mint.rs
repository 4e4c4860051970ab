//! Minting tokens: what `skylite token create` asks for ([`TokenSpec`]) becomes claims that both
//! skylite and sqld read the same way, signed with the data folder's key.

use std::time::Duration;

use ed25519_dalek::SigningKey;

use crate::claims::{Claims, Level, Permissions, Scope};
use crate::error::KeyError;
use crate::keys::hex;

/// What a new token grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSpec {
    /// The databases it opens (at least one, unless `admin`).
    pub databases: Vec<String>,
    /// Reads only.
    pub read_only: bool,
    /// The admin API and every database (then `databases` must be empty, `read_only` false).
    pub admin: bool,
    /// How long it lives (`None`: no `exp`, it never expires).
    pub lifetime: Option<Duration>,
}

/// A fresh random 128-bit token id, as 32 lowercase hex digits.
pub fn new_jti() -> Result<String, KeyError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(hex(&bytes))
}

impl TokenSpec {
    /// The claims of a token issued at `now` with id `jti`.
    ///
    /// One database: `{"id": db, "a": "rw"|"ro", "p": {"rw"|"ro": {"ns": [db]}}}` (`id`/`a` for
    /// sqld before `p` existed, `p` for sqld since; both say the same). Several: `a` and `p`.
    /// Admin: `{"skylite_admin": true}`. Always `iat`, `nbf` (= `iat`) and `jti`; `exp` unless
    /// the lifetime is `None`.
    pub fn claims(&self, now: i64, jti: String) -> Result<Claims, String> {
        let mut claims = Claims {
            iat: Some(now),
            nbf: Some(now),
            exp: self
                .lifetime
                .map(|d| now.saturating_add(d.as_secs().min(i64::MAX as u64) as i64)),
            jti: Some(jti),
            ..Claims::default()
        };
        if self.admin {
            if !self.databases.is_empty() || self.read_only {
                return Err(
                    "an admin token grants every database read-write: drop --db and --read-only"
                        .into(),
                );
            }
            claims.skylite_admin = true;
            return Ok(claims);
        }
        if self.databases.is_empty() {
            return Err("name the database the token is for (--db NAME)".into());
        }
        let (level, scope) = (
            if self.read_only {
                Level::ReadOnly
            } else {
                Level::ReadWrite
            },
            Some(Scope::databases(self.databases.iter().cloned())),
        );
        claims.a = Some(level);
        claims.p = Some(if self.read_only {
            Permissions {
                ro: scope,
                ..Permissions::default()
            }
        } else {
            Permissions {
                rw: scope,
                ..Permissions::default()
            }
        });
        if let [db] = self.databases.as_slice() {
            claims.id = Some(db.clone());
        }
        Ok(claims)
    }
}

/// Mints a token for `spec` signed with `key`, issued now. Returns the token and its claims.
pub fn mint(key: &SigningKey, spec: &TokenSpec) -> Result<(String, Claims), String> {
    let jti = new_jti().map_err(|e| e.to_string())?;
    let claims = spec.claims(crate::time::now_unix(), jti)?;
    Ok((crate::jwt::sign(key, &claims), claims))
}
