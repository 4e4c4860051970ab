//! SQLite values ([`Value`]: null, 64-bit integer, double, text, blob) and their conversions
//! to and from Rust types: [`IntoValue`] for parameters, [`FromValue`] for reading columns.
//!
//! | Rust | into a value | read from a value |
//! |---|---|---|
//! | `i64`, `i32`, `i16`, `i8`, `u32`, `u16`, `u8` | integer | integer (range-checked) |
//! | `u64`, `usize` | integer (error-free only up to `i64::MAX`: see [`IntoValue`]) | non-negative integer |
//! | `bool` | integer 0/1 | integer (non-zero is true) |
//! | `f64`, `f32` | float | float, or integer widened |
//! | `String`, `&str` | text | text |
//! | `Vec<u8>`, `&[u8]` | blob | blob |
//! | `Option<T>` | `None` is null | null is `None` |
//! | [`Value`] | itself | itself |

use crate::error::{Error, Result};

pub use skylite_proto::Value;

/// A Rust value that can be bound as a statement parameter.
pub trait IntoValue {
    /// The SQLite value.
    fn into_value(self) -> Value;
}

/// A Rust value that can be read from a column. `'a` lets `&str` and `&[u8]` borrow from the row.
pub trait FromValue<'a>: Sized {
    /// Converts, or says why not.
    fn from_value(value: &'a Value) -> Result<Self>;
}

fn mismatch(value: &Value, want: &str) -> Error {
    Error::decode(format!(
        "cannot read a {} value as {want}",
        value.type_name()
    ))
}

impl IntoValue for Value {
    fn into_value(self) -> Value {
        self
    }
}

impl IntoValue for &Value {
    fn into_value(self) -> Value {
        self.clone()
    }
}

macro_rules! int_into {
    ($($t:ty),*) => {$(
        impl IntoValue for $t {
            fn into_value(self) -> Value {
                Value::Integer(i64::from(self))
            }
        }
    )*};
}
int_into!(i64, i32, i16, i8, u32, u16, u8);

/// Values above `i64::MAX` do not fit an SQLite integer; they are stored as a float (as SQLite
/// itself does for such literals).
impl IntoValue for u64 {
    fn into_value(self) -> Value {
        match i64::try_from(self) {
            Ok(i) => Value::Integer(i),
            Err(_) => Value::Float(self as f64),
        }
    }
}

/// As for `u64`.
impl IntoValue for usize {
    fn into_value(self) -> Value {
        (self as u64).into_value()
    }
}

impl IntoValue for bool {
    fn into_value(self) -> Value {
        Value::Integer(i64::from(self))
    }
}

impl IntoValue for f64 {
    fn into_value(self) -> Value {
        Value::Float(self)
    }
}

impl IntoValue for f32 {
    fn into_value(self) -> Value {
        Value::Float(f64::from(self))
    }
}

impl IntoValue for String {
    fn into_value(self) -> Value {
        Value::Text(self)
    }
}

impl IntoValue for &String {
    fn into_value(self) -> Value {
        Value::Text(self.clone())
    }
}

impl IntoValue for &str {
    fn into_value(self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl IntoValue for Vec<u8> {
    fn into_value(self) -> Value {
        Value::Blob(self)
    }
}

impl IntoValue for &Vec<u8> {
    fn into_value(self) -> Value {
        Value::Blob(self.clone())
    }
}

impl IntoValue for &[u8] {
    fn into_value(self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl<const N: usize> IntoValue for [u8; N] {
    fn into_value(self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl<T: IntoValue> IntoValue for Option<T> {
    fn into_value(self) -> Value {
        match self {
            Some(v) => v.into_value(),
            None => Value::Null,
        }
    }
}

impl<'a> FromValue<'a> for Value {
    fn from_value(value: &'a Value) -> Result<Self> {
        Ok(value.clone())
    }
}

impl<'a> FromValue<'a> for &'a Value {
    fn from_value(value: &'a Value) -> Result<Self> {
        Ok(value)
    }
}

impl<'a> FromValue<'a> for i64 {
    fn from_value(value: &'a Value) -> Result<Self> {
        match value {
            Value::Integer(i) => Ok(*i),
            other => Err(mismatch(other, "an integer")),
        }
    }
}

macro_rules! int_from {
    ($($t:ty),*) => {$(
        impl<'a> FromValue<'a> for $t {
            fn from_value(value: &'a Value) -> Result<Self> {
                let i = i64::from_value(value)?;
                <$t>::try_from(i).map_err(|_| {
                    Error::decode(format!("{i} is out of the range of {}", stringify!($t)))
                })
            }
        }
    )*};
}
int_from!(i32, i16, i8, u64, u32, u16, u8, usize);

impl<'a> FromValue<'a> for bool {
    fn from_value(value: &'a Value) -> Result<Self> {
        match value {
            Value::Integer(i) => Ok(*i != 0),
            other => Err(mismatch(other, "a bool")),
        }
    }
}

impl<'a> FromValue<'a> for f64 {
    fn from_value(value: &'a Value) -> Result<Self> {
        match value {
            Value::Float(f) => Ok(*f),
            Value::Integer(i) => Ok(*i as f64),
            other => Err(mismatch(other, "a float")),
        }
    }
}

impl<'a> FromValue<'a> for f32 {
    fn from_value(value: &'a Value) -> Result<Self> {
        f64::from_value(value).map(|f| f as f32)
    }
}

impl<'a> FromValue<'a> for String {
    fn from_value(value: &'a Value) -> Result<Self> {
        <&str>::from_value(value).map(str::to_owned)
    }
}

impl<'a> FromValue<'a> for &'a str {
    fn from_value(value: &'a Value) -> Result<Self> {
        match value {
            Value::Text(s) => Ok(s),
            other => Err(mismatch(other, "text")),
        }
    }
}

impl<'a> FromValue<'a> for Vec<u8> {
    fn from_value(value: &'a Value) -> Result<Self> {
        <&[u8]>::from_value(value).map(<[u8]>::to_vec)
    }
}

impl<'a> FromValue<'a> for &'a [u8] {
    fn from_value(value: &'a Value) -> Result<Self> {
        match value {
            Value::Blob(b) => Ok(b),
            other => Err(mismatch(other, "a blob")),
        }
    }
}

impl<'a, T: FromValue<'a>> FromValue<'a> for Option<T> {
    fn from_value(value: &'a Value) -> Result<Self> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_and_check_ranges() {
        assert_eq!(i64::from_value(&i64::MAX.into_value()).unwrap(), i64::MAX);
        assert_eq!(u8::from_value(&Value::Integer(255)).unwrap(), 255);
        assert!(u8::from_value(&Value::Integer(256)).is_err());
        assert!(u32::from_value(&Value::Integer(-1)).is_err());
        assert!(bool::from_value(&true.into_value()).unwrap());
        assert_eq!(f64::from_value(&Value::Integer(3)).unwrap(), 3.0);
        assert_eq!(<&str>::from_value(&"é".into_value()).unwrap(), "é");
        assert_eq!(Option::<i64>::from_value(&Value::Null).unwrap(), None);
        assert_eq!(None::<i64>.into_value(), Value::Null);
        assert_eq!(u64::MAX.into_value(), Value::Float(u64::MAX as f64));
        let err = i64::from_value(&Value::Text("x".into())).unwrap_err();
        assert!(
            err.to_string().contains("text value as an integer"),
            "{err}"
        );
    }
}
