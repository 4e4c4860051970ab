//! The per-request entry point: an [`Authenticator`] (built once from the server's flags) turns
//! a bearer token into a [`Principal`] (or a 401), and the principal answers whether it may use
//! a database or the admin API (a [`Grant`], or a 403).
//!
//! Verifying an Ed25519 signature costs tens of microseconds, so verified tokens are cached by
//! their exact text (a bounded map); a cached token still has its `exp`, `nbf` and revocation
//! checked on every request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use ed25519_dalek::VerifyingKey;

use crate::claims::{Access, Claims, Grant};
use crate::error::{AuthError, KeyError};
use crate::jwt;
use crate::keys::{load_or_create_keypair, load_public_key_file, KeyPair};
use crate::revocation::RevocationList;
use crate::time::now_unix;

/// Default clock-skew tolerance on `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECS: i64 = 30;

/// Verified tokens kept; when full, the cache starts over.
const CACHE_CAPACITY: usize = 4096;

/// How the server authenticates: what `skylite serve` flags say.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The data folder (its `.skylite/jwt.key` is made if missing and always trusted;
    /// `.skylite/revoked.json` is the revocation list).
    pub data_dir: PathBuf,
    /// `--auth-jwt-key-file`: more trusted public keys (PEM or raw base64url, several per file).
    pub key_files: Vec<PathBuf>,
    /// `--no-auth`: every request may do everything. Nothing is loaded or created.
    pub disabled: bool,
    /// `--auth-legacy-full-access`: a token with none of `id`, `p`, `skylite_admin` may use
    /// every database (sqld's behaviour), instead of nothing.
    pub legacy_full_access: bool,
    /// Clock-skew tolerance on `exp` and `nbf`, in seconds.
    pub leeway_secs: i64,
}

impl AuthConfig {
    /// Auth on, the data folder's key only, no legacy full access, 30 s leeway.
    pub fn new(data_dir: impl Into<PathBuf>) -> AuthConfig {
        AuthConfig {
            data_dir: data_dir.into(),
            key_files: Vec::new(),
            disabled: false,
            legacy_full_access: false,
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }
    }
}

/// Who sent a request: an authenticated token, or anyone at all when auth is off.
#[derive(Debug, Clone)]
pub struct Principal {
    claims: Option<Arc<Claims>>,
    legacy_full_access: bool,
}

impl Principal {
    /// Everything allowed (what `--no-auth` gives every request).
    pub fn unrestricted() -> Principal {
        Principal {
            claims: None,
            legacy_full_access: true,
        }
    }

    /// May this principal do `want` on database `db`? (See [`Claims::authorize`] for the rules.)
    pub fn authorize(&self, db: &str, want: Access) -> Result<Grant, AuthError> {
        match &self.claims {
            None => Ok(Grant::ReadWrite),
            Some(c) => c.authorize(db, want, self.legacy_full_access),
        }
    }

    /// May this principal use the admin API?
    pub fn authorize_admin(&self) -> Result<(), AuthError> {
        self.authorize("", Access::Admin).map(|_| ())
    }

    /// The token's claims (`None` when auth is off).
    pub fn claims(&self) -> Option<&Claims> {
        self.claims.as_deref()
    }

    /// The token's `jti`, for audit logs.
    pub fn jti(&self) -> Option<&str> {
        self.claims.as_ref()?.jti.as_deref()
    }

    /// `true` when auth is off and this principal stands for anyone.
    pub fn is_unrestricted(&self) -> bool {
        self.claims.is_none()
    }
}

struct Inner {
    disabled: bool,
    legacy_full_access: bool,
    leeway: i64,
    own_key: Option<KeyPair>,
    key_files: Vec<PathBuf>,
    keys: RwLock<Arc<Vec<VerifyingKey>>>,
    revocations: Option<RevocationList>,
    cache: RwLock<HashMap<Box<str>, Arc<Claims>>>,
}

/// Checks tokens. Cheap to clone (shared inside), `Send + Sync`, built once at start.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("disabled", &self.inner.disabled)
            .field("legacy_full_access", &self.inner.legacy_full_access)
            .field("keys", &self.key_count())
            .finish_non_exhaustive()
    }
}

fn load_keys(own: Option<&KeyPair>, files: &[PathBuf]) -> Result<Vec<VerifyingKey>, KeyError> {
    let mut keys: Vec<VerifyingKey> = own.map(KeyPair::verifying).into_iter().collect();
    for file in files {
        for key in load_public_key_file(file)? {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    Ok(keys)
}

impl Authenticator {
    /// Builds the authenticator the flags ask for: loads (or makes) the data folder's key pair,
    /// reads every key file and the revocation list. Any unreadable file is an error, so a
    /// server never starts with fewer keys or revocations than its operator meant.
    pub fn from_config(config: &AuthConfig) -> Result<Authenticator, KeyError> {
        if config.disabled {
            return Ok(Authenticator::disabled());
        }
        let own = load_or_create_keypair(&config.data_dir)?;
        let keys = load_keys(Some(&own), &config.key_files)?;
        let revocations = RevocationList::for_data_dir(&config.data_dir)?;
        Ok(Authenticator::build(
            keys,
            Some(own),
            config.key_files.clone(),
            Some(revocations),
            config.legacy_full_access,
            config.leeway_secs,
        ))
    }

    /// Auth off: every request is [`Principal::unrestricted`].
    pub fn disabled() -> Authenticator {
        let mut a = Authenticator::build(Vec::new(), None, Vec::new(), None, true, 0);
        Arc::get_mut(&mut a.inner)
            .expect("just built, not shared")
            .disabled = true;
        a
    }

    /// An authenticator trusting exactly `keys` (for tests and embedding), with an optional
    /// revocation list.
    pub fn with_keys(
        keys: Vec<VerifyingKey>,
        revocations: Option<RevocationList>,
        legacy_full_access: bool,
    ) -> Authenticator {
        Authenticator::build(
            keys,
            None,
            Vec::new(),
            revocations,
            legacy_full_access,
            DEFAULT_LEEWAY_SECS,
        )
    }

    fn build(
        keys: Vec<VerifyingKey>,
        own_key: Option<KeyPair>,
        key_files: Vec<PathBuf>,
        revocations: Option<RevocationList>,
        legacy_full_access: bool,
        leeway: i64,
    ) -> Authenticator {
        Authenticator {
            inner: Arc::new(Inner {
                disabled: false,
                legacy_full_access,
                leeway,
                own_key,
                key_files,
                keys: RwLock::new(Arc::new(keys)),
                revocations,
                cache: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// `true` under `--no-auth`.
    pub fn is_disabled(&self) -> bool {
        self.inner.disabled
    }

    /// `true` under `--auth-legacy-full-access`.
    pub fn legacy_full_access(&self) -> bool {
        self.inner.legacy_full_access
    }

    /// The data folder's key pair (`None` when auth is off or built with [`Self::with_keys`]).
    /// `keypair().created` says whether this start made it: then log how to mint a token.
    pub fn keypair(&self) -> Option<&KeyPair> {
        self.inner.own_key.as_ref()
    }

    /// How many public keys are trusted.
    pub fn key_count(&self) -> usize {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The revocation list (`None` when auth is off or built without one).
    pub fn revocations(&self) -> Option<&RevocationList> {
        self.inner.revocations.as_ref()
    }

    /// Authenticates the value of an `Authorization` header (`Bearer <token>`, the scheme in any
    /// case). No header, or `Bearer` with nothing after it, is [`AuthError::Missing`].
    pub fn authenticate_header(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        if self.inner.disabled {
            return Ok(Principal::unrestricted());
        }
        let Some(value) = authorization.map(str::trim).filter(|v| !v.is_empty()) else {
            return self.authenticate(None);
        };
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::UnsupportedScheme(scheme.to_owned()));
        }
        self.authenticate(Some(token))
    }

    /// Authenticates a bare token (a bearer token, or the `jwt` of a WebSocket `hello`).
    pub fn authenticate(&self, token: Option<&str>) -> Result<Principal, AuthError> {
        self.authenticate_at(token, now_unix())
    }

    /// [`Self::authenticate`] at a given time (seconds since 1970).
    pub fn authenticate_at(&self, token: Option<&str>, now: i64) -> Result<Principal, AuthError> {
        let inner = &*self.inner;
        if inner.disabled {
            return Ok(Principal::unrestricted());
        }
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let cached = inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned();
        let claims = match cached {
            Some(claims) => {
                jwt::check_times(&claims, now, inner.leeway)?;
                claims
            }
            None => {
                let keys = inner
                    .keys
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let claims = Arc::new(jwt::verify(token, &keys, now, inner.leeway)?);
                let mut cache = inner.cache.write().unwrap_or_else(PoisonError::into_inner);
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
                cache.insert(token.into(), claims.clone());
                claims
            }
        };
        if let (Some(list), Some(jti)) = (&inner.revocations, &claims.jti) {
            if list.is_revoked(jti) {
                return Err(AuthError::Revoked(jti.clone()));
            }
        }
        Ok(Principal {
            claims: Some(claims),
            legacy_full_access: inner.legacy_full_access,
        })
    }

    /// Revokes a token by `jti` (pass its `exp` if known, so the entry can be pruned later).
    pub fn revoke(&self, jti: &str, exp: Option<i64>) -> Result<bool, KeyError> {
        match &self.inner.revocations {
            Some(list) => list.revoke(jti, exp),
            None => Err(KeyError::invalid(
                Path::new("-"),
                "this authenticator has no revocation list",
            )),
        }
    }

    /// Reads the key files and the revocation list again (key rotation without a restart).
    /// On error nothing changes.
    pub fn reload(&self) -> Result<(), KeyError> {
        let inner = &*self.inner;
        if inner.disabled {
            return Ok(());
        }
        if inner.own_key.is_some() || !inner.key_files.is_empty() {
            let keys = load_keys(inner.own_key.as_ref(), &inner.key_files)?;
            *inner.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
            // A key that was removed must stop vouching for the tokens it signed.
            inner
                .cache
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
        if let Some(list) = &inner.revocations {
            list.reload()?;
        }
        Ok(())
    }
}
