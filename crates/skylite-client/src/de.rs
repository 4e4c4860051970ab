//! A serde [`Deserializer`] for rows, so that `rows.deserialize::<MyStruct>()` works.
//!
//! A row deserializes as:
//! - a **struct or map**: each column is a field, matched by name (columns the struct does not
//!   name are ignored; a missing column is an error unless the field is an `Option` or has
//!   `#[serde(default)]`);
//! - a **tuple, tuple struct or sequence**: the columns in order;
//! - a **single value** (`i64`, `String`, `Option<T>`, ...) when the row has exactly one column.
//!
//! Each value deserializes as its SQLite type: null as unit / `None`, integer as `i64` (serde
//! range-checks smaller integer types), float as `f64` (an integer is accepted where a float is
//! asked for), text as a string (borrowed when the target borrows), blob as bytes (also as a
//! sequence of `u8`, so `Vec<u8>` fields work without `serde_bytes`). `bool` reads an integer
//! (non-zero is true); a unit-variant enum reads its variant name from text.

use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::forward_to_deserialize_any;

use crate::error::Error;
use crate::value::Value;

/// Decodes one row (`names[i]` is the name of `values[i]`).
pub(crate) fn from_row<'a, T: de::Deserialize<'a>>(
    names: &'a [String],
    values: &'a [Value],
) -> Result<T, Error> {
    T::deserialize(RowDeserializer { names, values }).map_err(|e| Error::Decode(e.0))
}

/// The error of the row deserializer (turned into [`Error::Decode`]).
#[derive(Debug)]
pub struct DeError(String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

/// Deserializes a whole row.
struct RowDeserializer<'a> {
    names: &'a [String],
    values: &'a [Value],
}

impl<'a> RowDeserializer<'a> {
    fn single(&self) -> Result<ValueDeserializer<'a>, DeError> {
        match self.values {
            [v] => Ok(ValueDeserializer(v)),
            vs => Err(DeError(format!(
                "a row of {} columns cannot be read as a single value (expected exactly one \
                 column; use a struct or a tuple)",
                vs.len()
            ))),
        }
    }
}

macro_rules! row_single {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.single()?.$method(visitor)
        }
    )*};
}

impl<'a> Deserializer<'a> for RowDeserializer<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(RowMap {
            names: self.names,
            values: self.values,
            next: 0,
        })
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let mut seq = SeqDeserializer::new(self.values.iter().map(ValueDeserializer));
        let out = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(out)
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.single()?.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    row_single!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_identifier
    );

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

/// The columns of a row as map entries.
struct RowMap<'a> {
    names: &'a [String],
    values: &'a [Value],
    next: usize,
}

impl<'a> MapAccess<'a> for RowMap<'a> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(name) = self.names.get(self.next) else {
            return Ok(None);
        };
        if self.next >= self.values.len() {
            return Ok(None);
        }
        seed.deserialize(BorrowedStrDeserializer::new(name.as_str()))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let i = self.next;
        self.next += 1;
        let value = self
            .values
            .get(i)
            .ok_or_else(|| DeError("a value was asked for past the last column".into()))?;
        let name = self.names.get(i).map(String::as_str).unwrap_or("");
        seed.deserialize(ValueDeserializer(value))
            .map_err(|e| DeError(format!("column {name:?}: {}", e.0)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.values.len().min(self.names.len()) - self.next.min(self.values.len()))
    }
}

/// Deserializes one value.
struct ValueDeserializer<'a>(&'a Value);

impl<'a> IntoDeserializer<'a, DeError> for ValueDeserializer<'a> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'a> Deserializer<'a> for ValueDeserializer<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Integer(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Text(s) => visitor.visit_borrowed_str(s),
            Value::Blob(b) => visitor.visit_borrowed_bytes(b),
        }
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Integer(i) => visitor.visit_bool(*i != 0),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Integer(i) => visitor.visit_f64(*i as f64),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Text(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Blob(b) => {
                let mut seq = SeqDeserializer::new(b.iter().copied());
                let out = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Text(s) => visitor.visit_enum(BorrowedStrDeserializer::new(s.as_str())),
            other => Err(DeError(format!(
                "an enum is read from text (its variant name), not from a {} value",
                other.type_name()
            ))),
        }
    }

    forward_to_deserialize_any! {
        <V: Visitor<'a>>
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char str string
        unit_struct tuple_struct map struct identifier ignored_any
    }
}
