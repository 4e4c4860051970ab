//! JWTs in compact form (`header.payload.signature`, each base64url): signing with Ed25519, and
//! verifying with a set of public keys, refusing every algorithm but `EdDSA` before anything else
//! is looked at, then checking `exp` and `nbf` with a leeway.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{Map, Value};

use crate::claims::Claims;
use crate::error::AuthError;

/// Longest token accepted (a generous bound: sqld and Turso tokens are a few hundred bytes).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// base64url that decodes with or without `=` padding and encodes without it.
pub(crate) const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The three segments of a compact JWT, split but not yet trusted.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Result<Parts<'a>, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed(format!(
                "longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        let mut it = token.split('.');
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(header), Some(payload), Some(signature), None) => Ok(Parts {
                header,
                payload,
                signature,
            }),
            _ => Err(AuthError::Malformed(
                "a JWT has three base64url parts separated by dots".into(),
            )),
        }
    }

    /// The bytes the signature covers: `base64url(header).base64url(payload)` as sent.
    fn signing_input(&self) -> String {
        format!("{}.{}", self.header, self.payload)
    }
}

fn decode_json_object(segment: &str, what: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = B64URL
        .decode(segment)
        .map_err(|_| AuthError::Malformed(format!("the {what} is not base64url")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AuthError::Malformed(format!(
            "the {what} is not a JSON object"
        ))),
        Err(_) => Err(AuthError::Malformed(format!("the {what} is not JSON"))),
    }
}

/// Checks the header: `alg` must be exactly `EdDSA`, and no `crit` extension may be asked for.
fn check_header(header: &Map<String, Value>) -> Result<(), AuthError> {
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "EdDSA" => {}
        Some(Value::String(alg)) => return Err(AuthError::UnsupportedAlgorithm(alg.clone())),
        Some(_) => return Err(AuthError::Malformed("`alg` is not a string".into())),
        None => return Err(AuthError::Malformed("the header has no `alg`".into())),
    }
    if header.contains_key("crit") {
        return Err(AuthError::Malformed(
            "the header asks for critical extensions (`crit`), none of which is supported".into(),
        ));
    }
    Ok(())
}

/// Signs `claims` with `key`: header `{"alg":"EdDSA","typ":"JWT"}`.
pub fn sign(key: &SigningKey, claims: &Claims) -> String {
    let header = B64URL.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
    let payload = B64URL.encode(serde_json::to_vec(claims).expect("claims always serialize"));
    let input = format!("{header}.{payload}");
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64URL.encode(signature.to_bytes()))
}

/// Verifies `token` against `keys` (any one may have signed it) at time `now` (seconds since
/// 1970), allowing `leeway` seconds of clock skew on `exp` and `nbf`. Returns its claims.
///
/// The header is checked before the signature (no algorithm but EdDSA is ever tried, so `none`
/// and HMAC-with-the-public-key tricks fail), and the payload is parsed only once the signature
/// holds.
pub fn verify(
    token: &str,
    keys: &[VerifyingKey],
    now: i64,
    leeway: i64,
) -> Result<Claims, AuthError> {
    let parts = Parts::split(token.trim())?;
    check_header(&decode_json_object(parts.header, "header")?)?;
    let sig_bytes = B64URL
        .decode(parts.signature)
        .map_err(|_| AuthError::Malformed("the signature is not base64url".into()))?;
    let sig_bytes: [u8; 64] = sig_bytes
        .try_into()
        .map_err(|_| AuthError::Malformed("an Ed25519 signature is 64 bytes".into()))?;
    let signature = Signature::from_bytes(&sig_bytes);
    let input = parts.signing_input();
    if !keys
        .iter()
        .any(|k| k.verify_strict(input.as_bytes(), &signature).is_ok())
    {
        return Err(AuthError::BadSignature);
    }
    let payload = decode_json_object(parts.payload, "payload")?;
    let claims: Claims = serde_json::from_value(Value::Object(payload))
        .map_err(|e| AuthError::Malformed(format!("bad claims: {e}")))?;
    check_times(&claims, now, leeway)?;
    Ok(claims)
}

/// `exp` and `nbf` against `now`, with `leeway` seconds of tolerance.
pub fn check_times(claims: &Claims, now: i64, leeway: i64) -> Result<(), AuthError> {
    if let Some(exp) = claims.exp {
        if now.saturating_sub(leeway) >= exp {
            return Err(AuthError::Expired(exp));
        }
    }
    if let Some(nbf) = claims.nbf {
        if now.saturating_add(leeway) < nbf {
            return Err(AuthError::NotYetValid(nbf));
        }
    }
    Ok(())
}

/// Decodes a token's header and payload without verifying anything (for `skylite token
/// inspect` and for reading the `jti` of a token being revoked). Never use it to authorize.
pub fn decode_unverified(token: &str) -> Result<(Value, Value), AuthError> {
    let parts = Parts::split(token.trim())?;
    let header = decode_json_object(parts.header, "header")?;
    let payload = decode_json_object(parts.payload, "payload")?;
    Ok((Value::Object(header), Value::Object(payload)))
}
