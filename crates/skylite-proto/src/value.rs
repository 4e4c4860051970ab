//! SQLite values as Hrana carries them (`{"type": "integer", "value": "42"}` and friends).
//!
//! The JSON form follows the Hrana 3 spec exactly: integers travel as strings so that the full
//! 64-bit range survives JavaScript, floats as JSON numbers (serialized shortest-round-trip and
//! parsed exactly, so every finite double comes back bit for bit), blobs as base64.
//! Decoding is lenient where real clients differ (padded or unpadded base64, an integer sent as a
//! JSON number); encoding is what the reference server sends (unpadded base64).

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One SQLite value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit IEEE float.
    Float(f64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes.
    Blob(Vec<u8>),
}

impl Value {
    /// The Hrana type name of this value (`"null"`, `"integer"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
        }
    }

    /// A rough count of the bytes this value takes on the wire, used for response-size limits.
    pub fn wire_size_hint(&self) -> usize {
        match self {
            Value::Null => 16,
            Value::Integer(_) | Value::Float(_) => 48,
            Value::Text(s) => 32 + s.len(),
            Value::Blob(b) => 32 + b.len() * 4 / 3,
        }
    }
}

/// Encodes bytes as the reference server does (standard alphabet, no padding).
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD_NO_PAD.encode(bytes)
}

/// Decodes base64 with or without padding (clients send both).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    if text.ends_with('=') {
        STANDARD.decode(text)
    } else {
        STANDARD_NO_PAD.decode(text)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = if matches!(self, Value::Null) { 1 } else { 2 };
        let mut map = serializer.serialize_map(Some(len))?;
        map.serialize_entry("type", self.type_name())?;
        match self {
            Value::Null => {}
            Value::Integer(i) => {
                let mut buf = itoa::Buffer::new();
                map.serialize_entry("value", buf.format(*i))?;
            }
            Value::Float(f) => map.serialize_entry("value", f)?,
            Value::Text(s) => map.serialize_entry("value", s)?,
            Value::Blob(b) => map.serialize_entry("base64", &encode_base64(b))?,
        }
        map.end()
    }
}

/// The `value` field before we know the `type` it belongs to.
enum Scalar {
    Str(String),
    Int(i64),
    Uint(u64),
    Float(f64),
    Null,
    Bool,
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Uint(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                let _ = v;
                Ok(Scalar::Bool)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Hrana value object like {\"type\": \"integer\", \"value\": \"1\"}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut ty: Option<String> = None;
                let mut value: Option<Scalar> = None;
                let mut base64: Option<String> = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "type" => ty = Some(map.next_value()?),
                        "value" => value = Some(map.next_value()?),
                        "base64" => base64 = Some(map.next_value()?),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let ty = ty.ok_or_else(|| de::Error::missing_field("type"))?;
                value_from_parts(&ty, value, base64)
            }
        }
        deserializer.deserialize_map(ValueVisitor)
    }
}

fn value_from_parts<E: de::Error>(
    ty: &str,
    value: Option<Scalar>,
    base64: Option<String>,
) -> Result<Value, E> {
    let wrong = |what: &str| E::custom(format!("invalid `value` for a {ty} value: {what}"));
    match ty {
        "null" => Ok(Value::Null),
        "integer" => match value.ok_or_else(|| E::missing_field("value"))? {
            Scalar::Str(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::Integer)
                .map_err(|_| wrong("expected a decimal 64-bit integer string")),
            Scalar::Int(i) => Ok(Value::Integer(i)),
            Scalar::Uint(u) => i64::try_from(u)
                .map(Value::Integer)
                .map_err(|_| wrong("out of the 64-bit signed range")),
            _ => Err(wrong("expected a string")),
        },
        "float" => match value.ok_or_else(|| E::missing_field("value"))? {
            Scalar::Float(f) => Ok(Value::Float(f)),
            Scalar::Int(i) => Ok(Value::Float(i as f64)),
            Scalar::Uint(u) => Ok(Value::Float(u as f64)),
            Scalar::Str(s) => s
                .trim()
                .parse::<f64>()
                .map(Value::Float)
                .map_err(|_| wrong("expected a number")),
            _ => Err(wrong("expected a number")),
        },
        "text" => match value.ok_or_else(|| E::missing_field("value"))? {
            Scalar::Str(s) => Ok(Value::Text(s)),
            _ => Err(wrong("expected a string")),
        },
        "blob" => {
            let text = match (base64, value) {
                (Some(b), _) => b,
                (None, Some(Scalar::Str(s))) => s,
                _ => return Err(E::missing_field("base64")),
            };
            decode_base64(&text)
                .map(Value::Blob)
                .map_err(|e| E::custom(format!("invalid base64 in a blob value: {e}")))
        }
        other => Err(E::unknown_variant(
            other,
            &["null", "integer", "float", "text", "blob"],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &Value) -> Value {
        let json = serde_json::to_string(v).unwrap();
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn integers_travel_as_strings_over_the_full_range() {
        for i in [0i64, 1, -1, i64::MAX, i64::MIN, 9_007_199_254_740_993] {
            let json = serde_json::to_string(&Value::Integer(i)).unwrap();
            assert_eq!(json, format!("{{\"type\":\"integer\",\"value\":\"{i}\"}}"));
            assert_eq!(round_trip(&Value::Integer(i)), Value::Integer(i));
        }
    }

    #[test]
    fn floats_round_trip_bit_for_bit() {
        // A deterministic spread of doubles, including subnormals and extremes.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut checked = 0;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if !f.is_finite() {
                continue;
            }
            match round_trip(&Value::Float(f)) {
                Value::Float(g) => assert_eq!(f.to_bits(), g.to_bits(), "{f:e}"),
                other => panic!("{other:?}"),
            }
            checked += 1;
        }
        assert!(checked > 90_000);
        for f in [0.1, -0.0, f64::MIN_POSITIVE, f64::MAX, f64::MIN, 5e-324] {
            match round_trip(&Value::Float(f)) {
                Value::Float(g) => assert_eq!(f.to_bits(), g.to_bits()),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn blobs_accept_padded_and_unpadded_base64() {
        let blob = Value::Blob(vec![0, 1, 0, 255]);
        assert_eq!(
            serde_json::to_string(&blob).unwrap(),
            r#"{"type":"blob","base64":"AAEA/w"}"#
        );
        let padded: Value = serde_json::from_str(r#"{"type":"blob","base64":"AAEA/w=="}"#).unwrap();
        assert_eq!(padded, blob);
        assert_eq!(round_trip(&blob), blob);
    }

    #[test]
    fn text_null_and_key_order() {
        let v: Value = serde_json::from_str(r#"{"value":"héllo 🌍","type":"text"}"#).unwrap();
        assert_eq!(v, Value::Text("héllo 🌍".into()));
        let v: Value = serde_json::from_str(r#"{"type":"null"}"#).unwrap();
        assert_eq!(v, Value::Null);
        assert_eq!(
            serde_json::to_string(&Value::Null).unwrap(),
            r#"{"type":"null"}"#
        );
    }

    #[test]
    fn malformed_values_are_clear_errors() {
        for (json, needle) in [
            (r#"{"type":"integer","value":"12x"}"#, "64-bit integer"),
            (r#"{"type":"integer"}"#, "missing field `value`"),
            (
                r#"{"type":"integer","value":"99999999999999999999"}"#,
                "64-bit",
            ),
            (r#"{"type":"blob","base64":"!!"}"#, "base64"),
            (r#"{"type":"text","value":5}"#, "expected a string"),
            (r#"{"type":"date","value":"x"}"#, "unknown variant `date`"),
            (r#"{"value":"1"}"#, "missing field `type`"),
            (r#"5"#, "Hrana value object"),
        ] {
            let err = serde_json::from_str::<Value>(json).unwrap_err().to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }
}
