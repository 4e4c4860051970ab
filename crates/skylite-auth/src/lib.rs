//! Who may do what: Ed25519 JWTs as sqld and Turso mint them and libSQL clients send them.
//!
//! # Tokens
//!
//! A token is a compact JWT whose header says `"alg": "EdDSA"` (anything else, `none` and
//! `HS256` included, is refused before the signature is looked at) and whose payload holds:
//!
//! | claim | meaning |
//! |---|---|
//! | `id` | sqld's one database: the token opens that database only |
//! | `a` | sqld's access level, `"rw"` or `"ro"` (`"roa"` reads as `"ro"`); `ro` caps every grant to reads |
//! | `p` | sqld's per-database lists: `{"rw": {"ns": ["a"]}, "ro": {"ns": ["b"]}}`; also `roa` (read), `rwa` and `ddl` (read-write). When present it alone decides which databases are open (`id` is then ignored, as sqld does) |
//! | `skylite_admin` | `true`: the admin API and every database (read-write unless `"a": "ro"`, which also shuts the admin API) |
//! | `exp`, `nbf` | expiry and start, seconds since 1970, checked with 30 s of leeway |
//! | `iat` | issue time (informational) |
//! | `jti` | token id, for audit logs and revocation |
//!
//! A token with none of `id`, `p`, `skylite_admin` is what sqld treats as "full access". Here it
//! grants nothing (403 naming the claims it needs) unless the server runs with
//! `--auth-legacy-full-access` ([`AuthConfig::legacy_full_access`]); then it opens every database
//! (read-only with `"a": "ro"`), never the admin API.
//!
//! # Using it in the server
//!
//! ```no_run
//! use skylite_auth::{Access, AuthConfig, Authenticator};
//!
//! // Once, at start (makes <data-dir>/.skylite/jwt.key on first start).
//! let mut config = AuthConfig::new("./skylite-data");
//! config.key_files.push("sqld-keys.pem".into()); // --auth-jwt-key-file, repeatable
//! let auth = Authenticator::from_config(&config)?; // Clone + Send + Sync
//! if auth.keypair().is_some_and(|k| k.created) {
//!     // log: "made a key pair; mint a token with `skylite token create --data-dir ...`"
//! }
//!
//! // Per request (HTTP: the Authorization header; WebSocket: hello's `jwt`).
//! let principal = auth.authenticate_header(Some("Bearer eyJ..."))   // Err: 401
//!     .map_err(|e| (e.status(), e.code(), e.to_string()))
//!     .unwrap();
//! let grant = principal.authorize("app", Access::Read)?;           // Err: 403
//! if !grant.can_write() { /* run the session read-only */ }
//! principal.authorize_admin()?;                                     // admin API routes
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every [`AuthError`] carries its HTTP status ([`AuthError::status`]: 401 for a missing, malformed,
//! badly signed, expired, not yet valid or revoked token; 403 for a valid token that does not
//! allow the request), a stable code ([`AuthError::code`]) and a message meant for the user.
//!
//! [`Authenticator::authenticate`] is cheap: verified tokens are cached by their text, so a
//! repeated token costs a hash lookup, the time checks and an O(1) revocation check
//! ([`RevocationList`], which notices changes to `revoked.json` within a second).
//!
//! # Files in the data folder
//!
//! `.skylite/jwt.key` (private, PKCS#8 PEM, 0600), `.skylite/jwt.pub` (SPKI PEM), and
//! `.skylite/revoked.json` (see [`revocation`]).

pub mod authenticator;
pub mod claims;
pub mod error;
// The data folder's durable-write helper lives in the engine; this crate depends on no other
// skylite crate, so it compiles the same (std-only) source.
#[path = "../../skylite-engine/src/fs_durable.rs"]
pub(crate) mod fs_durable;
pub mod jwt;
pub mod keys;
pub mod mint;
pub mod revocation;
pub mod time;

pub use authenticator::{AuthConfig, Authenticator, Principal, DEFAULT_LEEWAY_SECS};
pub use claims::{Access, Claims, Grant, Level, Permissions, Scope};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::{AuthError, KeyError};
pub use jwt::{decode_unverified, sign, verify};
pub use keys::{
    generate_keypair, load_or_create_keypair, load_public_key_file, load_signing_key,
    parse_public_keys, raw_public_key, KeyPair,
};
pub use mint::{mint, new_jti, TokenSpec};
pub use revocation::RevocationList;
pub use time::{format_unix, now_unix, parse_lifetime};
