//! The legacy HTTP API that predates Hrana (`POST /` with `{"statements": [...]}`), where values
//! are plain JSON: `null`, numbers, strings, and blobs as `{"base64": "..."}`.
//!
//! `/v1/execute` and `/v1/batch` ("Hrana over HTTP" v1) reuse the Hrana structures and need only
//! the two small wrappers at the bottom.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{encode_base64, Batch, BatchResult, Stmt, StmtResult, Value};

/// Body of `POST /`: statements run together, in one transaction.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LegacyQuery {
    /// The statements.
    pub statements: Vec<LegacyStatement>,
}

/// A statement of the legacy API: bare SQL or SQL with parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyStatement {
    /// SQL text.
    pub q: String,
    /// Its parameters.
    pub params: LegacyParams,
}

/// Parameters of a legacy statement.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum LegacyParams {
    /// No parameters.
    #[default]
    None,
    /// Bound by position.
    Positional(Vec<Value>),
    /// Bound by name (the name may lack its prefix).
    Named(BTreeMap<String, Value>),
}

impl<'de> Deserialize<'de> for LegacyStatement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct WithParams {
            q: String,
            #[serde(default)]
            params: Option<RawParams>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Sql(String),
            WithParams(WithParams),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum RawParams {
            Positional(Vec<PlainValue>),
            Named(BTreeMap<String, PlainValue>),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            de::Error::custom(
                "a statement must be an SQL string or {\"q\": string, \"params\": array | object}",
            )
        })?;
        Ok(match raw {
            Raw::Sql(q) => LegacyStatement {
                q,
                params: LegacyParams::None,
            },
            Raw::WithParams(WithParams { q, params }) => LegacyStatement {
                q,
                params: match params {
                    None => LegacyParams::None,
                    Some(RawParams::Positional(v)) => {
                        LegacyParams::Positional(v.into_iter().map(|p| p.0).collect())
                    }
                    Some(RawParams::Named(m)) => {
                        LegacyParams::Named(m.into_iter().map(|(k, v)| (k, v.0)).collect())
                    }
                },
            },
        })
    }
}

/// A value in plain JSON form: `null`, `true`/`false` (as 1/0), a number, a string, or
/// `{"base64": "..."}`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainValue(pub Value);

impl Serialize for PlainValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Value::Null => s.serialize_unit(),
            Value::Integer(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Text(t) => s.serialize_str(t),
            Value::Blob(b) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("base64", &encode_base64(b))?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for PlainValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PlainVisitor;
        impl<'de> Visitor<'de> for PlainVisitor {
            type Value = PlainValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("null, a boolean, a number, a string or {\"base64\": string}")
            }
            fn visit_unit<E: de::Error>(self) -> Result<PlainValue, E> {
                Ok(PlainValue(Value::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<PlainValue, E> {
                Ok(PlainValue(Value::Null))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<PlainValue, E> {
                Ok(PlainValue(Value::Integer(v as i64)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PlainValue, E> {
                Ok(PlainValue(Value::Integer(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PlainValue, E> {
                i64::try_from(v)
                    .map(|i| PlainValue(Value::Integer(i)))
                    .map_err(|_| E::custom("integer out of the 64-bit signed range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<PlainValue, E> {
                Ok(PlainValue(Value::Float(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PlainValue, E> {
                Ok(PlainValue(Value::Text(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<PlainValue, E> {
                Ok(PlainValue(Value::Text(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<PlainValue, A::Error> {
                Err(de::Error::custom("an array is not a SQLite value"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PlainValue, A::Error> {
                let mut blob = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "base64" {
                        let text: String = map.next_value()?;
                        blob = Some(crate::decode_base64(&text).map_err(|e| {
                            de::Error::custom(format!("invalid base64 in a blob value: {e}"))
                        })?);
                    } else {
                        return Err(de::Error::unknown_field(&key, &["base64"]));
                    }
                }
                blob.map(|b| PlainValue(Value::Blob(b)))
                    .ok_or_else(|| de::Error::missing_field("base64"))
            }
        }
        d.deserialize_any(PlainVisitor)
    }
}

/// The outcome of one legacy statement: its rows, or the error message.
#[derive(Debug, Clone, PartialEq)]
pub enum LegacyResult {
    /// The statement ran.
    Results {
        /// Column names.
        columns: Vec<String>,
        /// Rows of plain values.
        rows: Vec<Vec<Value>>,
        /// Rows the statement read.
        rows_read: u64,
        /// Rows the statement wrote.
        rows_written: u64,
        /// Time spent in SQLite, in milliseconds.
        query_duration_ms: f64,
    },
    /// The statement failed with this message.
    Error(String),
}

impl Serialize for LegacyResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Results<'a> {
            columns: &'a [String],
            rows: Vec<Vec<PlainValueRef<'a>>>,
            rows_read: u64,
            rows_written: u64,
            query_duration_ms: f64,
        }
        struct PlainValueRef<'a>(&'a Value);
        impl Serialize for PlainValueRef<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                // Cloning only blobs' wrapper is cheap enough for this legacy path.
                PlainValue(self.0.clone()).serialize(s)
            }
        }
        let mut map = s.serialize_map(Some(1))?;
        match self {
            LegacyResult::Results {
                columns,
                rows,
                rows_read,
                rows_written,
                query_duration_ms,
            } => map.serialize_entry(
                "results",
                &Results {
                    columns,
                    rows: rows
                        .iter()
                        .map(|r| r.iter().map(PlainValueRef).collect())
                        .collect(),
                    rows_read: *rows_read,
                    rows_written: *rows_written,
                    query_duration_ms: *query_duration_ms,
                },
            )?,
            LegacyResult::Error(message) => map.serialize_entry("error", message)?,
        }
        map.end()
    }
}

/// Body of `POST /v1/execute`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct V1ExecuteReq {
    /// The statement.
    pub stmt: Stmt,
}

/// Response of `POST /v1/execute`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct V1ExecuteResp {
    /// Its result.
    pub result: StmtResult,
}

/// Body of `POST /v1/batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct V1BatchReq {
    /// The batch.
    pub batch: Batch,
}

/// Response of `POST /v1/batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct V1BatchResp {
    /// Its result.
    pub result: BatchResult,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_strings_or_objects() {
        let q: LegacyQuery = serde_json::from_str(
            r#"{"statements":["SELECT 1",
                {"q":"SELECT ?, ?, ?","params":[1, "x", {"base64":"AAE="}]},
                {"q":"SELECT :a","params":{":a": 2.5}},
                {"q":"SELECT 2"}]}"#,
        )
        .unwrap();
        assert_eq!(q.statements[0].params, LegacyParams::None);
        assert_eq!(
            q.statements[1].params,
            LegacyParams::Positional(vec![
                Value::Integer(1),
                Value::Text("x".into()),
                Value::Blob(vec![0, 1])
            ])
        );
        match &q.statements[2].params {
            LegacyParams::Named(m) => assert_eq!(m[":a"], Value::Float(2.5)),
            other => panic!("{other:?}"),
        }
        assert_eq!(q.statements[3].q, "SELECT 2");
    }

    #[test]
    fn bad_statement_is_a_clear_error() {
        let err = serde_json::from_str::<LegacyQuery>(r#"{"statements":[5]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("SQL string"), "{err}");
    }

    #[test]
    fn results_are_plain_json() {
        let out = vec![
            LegacyResult::Results {
                columns: vec!["a".into(), "b".into()],
                rows: vec![vec![Value::Integer(1), Value::Blob(vec![255])]],
                rows_read: 1,
                rows_written: 0,
                query_duration_ms: 0.0,
            },
            LegacyResult::Error("no such table: x".into()),
        ];
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json[0]["results"]["rows"][0][0], 1);
        assert_eq!(json[0]["results"]["rows"][0][1]["base64"], "/w");
        assert_eq!(json[1]["error"], "no such table: x");
    }
}
