//! Statement parameters ([`Params`]: none, positional `?`/`?NNN`, or named `:a`/`@a`/`$a`), the
//! [`IntoParams`] trait that lets `execute` take tuples, arrays and vectors, the [`params!`](crate::params!) and
//! [`named_params!`](crate::named_params!) macros, and [`Statement`] (SQL plus parameters, for batches).
//!
//! ```
//! use skylite_client::{named_params, params, IntoParams, Params, Value};
//!
//! let p = (1, "two", 3.0).into_params();          // positional, any mix of types
//! assert_eq!(p, Params::Positional(vec![Value::Integer(1), Value::Text("two".into()), Value::Float(3.0)]));
//! let p = params![1, "two"];                       // the same as a macro
//! let p = [(":id", 1)].into_params();              // named; the prefix may be `:`, `@`, `$` or none
//! let p = named_params! { ":id" => 1, "@name" => "x" };
//! ```

use skylite_proto::{NamedArg, Stmt};

use crate::value::{IntoValue, Value};

/// The parameters of one statement.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Params {
    /// No parameters (any parameter in the SQL binds `NULL`).
    #[default]
    None,
    /// Positional: the first binds `?1` (or the first `?`), and so on.
    Positional(Vec<Value>),
    /// Named: each name, with or without its prefix (`:`, `@`, `$`), binds that parameter.
    Named(Vec<(String, Value)>),
}

/// Anything `execute` accepts as parameters.
pub trait IntoParams {
    /// The parameters.
    fn into_params(self) -> Params;
}

impl IntoParams for Params {
    fn into_params(self) -> Params {
        self
    }
}

impl IntoParams for () {
    fn into_params(self) -> Params {
        Params::None
    }
}

impl IntoParams for Vec<Value> {
    fn into_params(self) -> Params {
        Params::Positional(self)
    }
}

impl IntoParams for Vec<(String, Value)> {
    fn into_params(self) -> Params {
        Params::Named(self)
    }
}

impl<T: IntoValue, const N: usize> IntoParams for [T; N] {
    fn into_params(self) -> Params {
        Params::Positional(self.into_iter().map(IntoValue::into_value).collect())
    }
}

impl<T: IntoValue, const N: usize> IntoParams for [(&str, T); N] {
    fn into_params(self) -> Params {
        Params::Named(
            self.into_iter()
                .map(|(k, v)| (k.to_owned(), v.into_value()))
                .collect(),
        )
    }
}

impl<T: IntoValue + Clone> IntoParams for &[T] {
    fn into_params(self) -> Params {
        Params::Positional(self.iter().cloned().map(IntoValue::into_value).collect())
    }
}

macro_rules! tuple_params {
    ($($name:ident),+) => {
        impl<$($name: IntoValue),+> IntoParams for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_params(self) -> Params {
                let ($($name,)+) = self;
                Params::Positional(vec![$($name.into_value()),+])
            }
        }
    };
}
tuple_params!(A);
tuple_params!(A, B);
tuple_params!(A, B, C);
tuple_params!(A, B, C, D);
tuple_params!(A, B, C, D, E);
tuple_params!(A, B, C, D, E, F);
tuple_params!(A, B, C, D, E, F, G);
tuple_params!(A, B, C, D, E, F, G, H);
tuple_params!(A, B, C, D, E, F, G, H, I);
tuple_params!(A, B, C, D, E, F, G, H, I, J);
tuple_params!(A, B, C, D, E, F, G, H, I, J, K);
tuple_params!(A, B, C, D, E, F, G, H, I, J, K, L);

/// Positional parameters of mixed types: `params![1, "a", None::<i64>]`.
#[macro_export]
macro_rules! params {
    () => { $crate::Params::None };
    ($($v:expr),+ $(,)?) => {
        $crate::Params::Positional(vec![$($crate::IntoValue::into_value($v)),+])
    };
}

/// Named parameters of mixed types: `named_params! { ":id" => 1, "@name" => "x" }`.
#[macro_export]
macro_rules! named_params {
    () => { $crate::Params::None };
    ($($k:expr => $v:expr),+ $(,)?) => {
        $crate::Params::Named(vec![$((::std::string::String::from($k), $crate::IntoValue::into_value($v))),+])
    };
}

/// One SQL statement with its parameters, as a step of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL text (one statement).
    pub sql: String,
    /// Its parameters.
    pub params: Params,
}

impl Statement {
    /// A statement without parameters.
    pub fn new(sql: impl Into<String>) -> Self {
        Statement {
            sql: sql.into(),
            params: Params::None,
        }
    }

    /// A statement with parameters.
    pub fn with_params(sql: impl Into<String>, params: impl IntoParams) -> Self {
        Statement {
            sql: sql.into(),
            params: params.into_params(),
        }
    }

    /// The Hrana form.
    pub(crate) fn into_stmt(self) -> Stmt {
        let mut stmt = Stmt::new(self.sql);
        match self.params {
            Params::None => {}
            Params::Positional(args) => stmt.args = args,
            Params::Named(named) => {
                stmt.named_args = named
                    .into_iter()
                    .map(|(name, value)| NamedArg { name, value })
                    .collect()
            }
        }
        stmt.want_rows = Some(true);
        stmt
    }
}

impl From<&str> for Statement {
    fn from(sql: &str) -> Self {
        Statement::new(sql)
    }
}

impl From<String> for Statement {
    fn from(sql: String) -> Self {
        Statement::new(sql)
    }
}

impl<P: IntoParams> From<(&str, P)> for Statement {
    fn from((sql, params): (&str, P)) -> Self {
        Statement::with_params(sql, params)
    }
}

impl<P: IntoParams> From<(String, P)> for Statement {
    fn from((sql, params): (String, P)) -> Self {
        Statement::with_params(sql, params)
    }
}
