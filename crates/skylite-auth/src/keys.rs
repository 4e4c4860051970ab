//! Ed25519 keys on disk: the server's own key pair in `<data-dir>/.skylite/` (`jwt.key`, private,
//! PKCS#8 PEM, mode 0600; `jwt.pub`, public, SPKI PEM), made on first use; and public key files
//! as sqld's `--auth-jwt-key-file` takes them: PEM `PUBLIC KEY` blocks and/or raw base64url
//! 32-byte keys, one per line, as many as wanted.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::KeyError;
use crate::jwt::B64URL;

/// Private key file name (in `<data-dir>/.skylite/`, or `keygen`'s output folder).
pub const PRIVATE_KEY_FILE: &str = "jwt.key";
/// Public key file name, beside the private one.
pub const PUBLIC_KEY_FILE: &str = "jwt.pub";

/// The folder of server secrets inside a data folder.
pub fn secrets_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(".skylite")
}

/// A signing key and where it lives.
pub struct KeyPair {
    /// The private key.
    pub signing: SigningKey,
    /// `jwt.key`.
    pub private_path: PathBuf,
    /// `jwt.pub`.
    pub public_path: PathBuf,
    /// `true` when this call made the key pair (the server logs how to mint a token then).
    pub created: bool,
}

impl KeyPair {
    /// The public key.
    pub fn verifying(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public key as raw base64url (32 bytes, no padding): one line of an sqld key file.
    pub fn public_raw(&self) -> String {
        raw_public_key(&self.verifying())
    }
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public_raw())
            .field("private_path", &self.private_path)
            .finish_non_exhaustive()
    }
}

/// A public key as raw base64url without padding (the form sqld's key file and Turso accept).
pub fn raw_public_key(key: &VerifyingKey) -> String {
    B64URL.encode(key.as_bytes())
}

/// A public key as an SPKI PEM block.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("an Ed25519 public key always encodes")
}

fn random_signing_key() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `bytes` to `path` only if `path` does not exist yet, atomically and durably (the
/// folder is fsynced too). Returns `Ok(false)` when the file already existed.
fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, KeyError> {
    crate::fs_durable::write_new_file(path, bytes, mode).map_err(|e| KeyError::io(path, e))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn private_pem(key: &SigningKey, path: &Path) -> Result<String, KeyError> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| KeyError::invalid(path, format!("cannot encode the private key: {e}")))
}

/// Reads a private key (PKCS#8 PEM, as `jwt.key` holds it).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyError::io(path, e))?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| {
        KeyError::invalid(
            path,
            format!("not an Ed25519 private key in PKCS#8 PEM: {e}"),
        )
    })
}

/// Loads `<data-dir>/.skylite/jwt.key`, or makes the key pair if there is none (safe against
/// two processes starting at once: the first key written wins, the other process loads it).
/// Also writes `jwt.pub` if it is missing.
pub fn load_or_create_keypair(data_dir: &Path) -> Result<KeyPair, KeyError> {
    let dir = secrets_dir(data_dir);
    crate::fs_durable::create_dir_all(&dir).map_err(|e| KeyError::io(&dir, e))?;
    let private_path = dir.join(PRIVATE_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    let mut created = false;
    let signing = if private_path.exists() {
        load_signing_key(&private_path)?
    } else {
        let key = random_signing_key()?;
        if write_new_file(
            &private_path,
            private_pem(&key, &private_path)?.as_bytes(),
            0o600,
        )? {
            created = true;
            key
        } else {
            load_signing_key(&private_path)?
        }
    };
    warn_if_readable_by_others(&private_path);
    let public_pem = public_key_pem(&signing.verifying_key());
    if !public_path.exists() {
        write_new_file(&public_path, public_pem.as_bytes(), 0o644)?;
    }
    Ok(KeyPair {
        signing,
        private_path,
        public_path,
        created,
    })
}

/// Makes a new key pair in `out_dir` (`jwt.key` mode 0600, `jwt.pub`); refuses to replace an
/// existing `jwt.key`.
pub fn generate_keypair(out_dir: &Path) -> Result<KeyPair, KeyError> {
    crate::fs_durable::create_dir_all(out_dir).map_err(|e| KeyError::io(out_dir, e))?;
    let private_path = out_dir.join(PRIVATE_KEY_FILE);
    let public_path = out_dir.join(PUBLIC_KEY_FILE);
    let signing = random_signing_key()?;
    if !write_new_file(
        &private_path,
        private_pem(&signing, &private_path)?.as_bytes(),
        0o600,
    )? {
        return Err(KeyError::invalid(
            &private_path,
            "already exists; not replacing a key (move it away first)",
        ));
    }
    let public_pem = public_key_pem(&signing.verifying_key());
    crate::fs_durable::write_file(&public_path, public_pem.as_bytes(), 0o644)
        .map_err(|e| KeyError::io(&public_path, e))?;
    Ok(KeyPair {
        signing,
        private_path,
        public_path,
        created: true,
    })
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "private key is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// Standard base64 that accepts missing padding (some tools strip it from raw keys too).
const B64STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn raw_key(line: &str) -> Result<VerifyingKey, String> {
    let bytes = B64URL
        .decode(line)
        .or_else(|_| B64STD.decode(line))
        .map_err(|_| "not base64".to_owned())?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|v: Vec<u8>| format!("{} bytes, an Ed25519 public key has 32", v.len()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid Ed25519 public key".to_owned())
}

/// Parses the text of a public key file: any number of PEM `PUBLIC KEY` (SPKI) blocks and raw
/// base64url (or base64) 32-byte keys, one per line; blank lines and `#` comments are skipped.
/// A private key, another PEM type or a bad line is an error (a key file is all good or refused).
pub fn parse_public_keys(text: &str) -> Result<Vec<VerifyingKey>, String> {
    let line_at = |offset: usize| text[..offset].matches('\n').count() + 1;
    let mut keys = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        let outside_len = rest.find("-----BEGIN ").unwrap_or(rest.len());
        let mut offset = pos;
        for line in rest[..outside_len].split_inclusive('\n') {
            let key = line.trim();
            if !key.is_empty() && !key.starts_with('#') {
                keys.push(raw_key(key).map_err(|e| format!("line {}: {e}", line_at(offset)))?);
            }
            offset += line.len();
        }
        pos += outside_len;
        if pos >= text.len() {
            break;
        }
        let line_no = line_at(pos);
        let after_begin = &text[pos + "-----BEGIN ".len()..];
        let label_end = after_begin
            .find("-----")
            .ok_or_else(|| format!("line {line_no}: unterminated PEM BEGIN line"))?;
        let label = &after_begin[..label_end];
        let body_start = &after_begin[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_len = body_start
            .find(&end_marker)
            .ok_or_else(|| format!("line {line_no}: no `{end_marker}`"))?;
        match label {
            "PUBLIC KEY" => {}
            "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" | "OPENSSH PRIVATE KEY" => {
                return Err(format!(
                    "line {line_no}: this is a private key; give the public key (jwt.pub) instead"
                ))
            }
            other => {
                return Err(format!(
                    "line {line_no}: PEM `{other}` is not an Ed25519 public key (`PUBLIC KEY`)"
                ))
            }
        }
        let b64: String = body_start[..body_len]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = STANDARD
            .decode(&b64)
            .map_err(|_| format!("line {line_no}: the PEM body is not base64"))?;
        keys.push(
            VerifyingKey::from_public_key_der(&der)
                .map_err(|e| format!("line {line_no}: not an Ed25519 public key: {e}"))?,
        );
        pos += "-----BEGIN ".len() + label_end + 5 + body_len + end_marker.len();
    }
    Ok(keys)
}

/// Reads a public key file (see [`parse_public_keys`]); a file with no key is an error.
pub fn load_public_key_file(path: &Path) -> Result<Vec<VerifyingKey>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyError::io(path, e))?;
    let keys = parse_public_keys(&text).map_err(|e| KeyError::invalid(path, e))?;
    if keys.is_empty() {
        return Err(KeyError::invalid(path, "holds no public key"));
    }
    Ok(keys)
}
