//! SQL functions the bundled libSQL build lacks but applications expect: the `REGEXP` operator
//! (`regexp(pattern, text)`, which SQLAlchemy's SQLite dialect emits for `regexp_match`) and
//! SQLite's math functions (`floor`, `ceil`, `ln`, `pow`, ...; the library is built without
//! `SQLITE_ENABLE_MATH_FUNCTIONS`, and SQLAlchemy compiles `//` to `FLOOR(...)`).
//!
//! [`register`] installs them on a connection; every connection the engine opens gets them, so
//! server and local files behave alike. The math functions follow SQLite's own `func.c`
//! (`ceilingFunc`, `math1Func`, `math2Func`, `logFunc`, `piFunc`): a NULL or non-numeric
//! argument gives NULL, a domain error (NaN) gives NULL, `log(X)` is base 10 and `log(B, X)`
//! takes the base first. `ceil`, `floor` and `trunc` return an integer argument unchanged.
//!
//! `regexp` uses the `regex` crate, whose matching is linear in the subject (no backtracking,
//! so no pattern can make a scan take exponential time); patterns are bounded by a compiled-size
//! limit and compiled once per statement (SQLite's auxiliary data keeps the compiled pattern for
//! as long as the pattern argument is constant).

use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

/// Largest compiled program a `REGEXP` pattern may produce (bytes); beyond it the statement
/// fails with a clear error instead of using unbounded memory.
pub const REGEXP_COMPILED_SIZE_LIMIT: usize = 1 << 20;

/// Largest lazy-DFA cache one compiled pattern may use (bytes).
const REGEXP_DFA_SIZE_LIMIT: usize = 2 << 20;

/// Registers `regexp` and SQLite's math functions on `conn`.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    // The same for the same arguments, and harmless in triggers, views and CHECK constraints.
    let flags = || {
        FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS
    };

    conn.create_scalar_function("regexp", 2, flags(), regexp)?;

    for (name, op) in ROUNDING {
        conn.create_scalar_function(name, 1, flags(), move |ctx| Ok(rounding(ctx, op)))?;
    }
    for (name, op) in MATH1 {
        conn.create_scalar_function(name, 1, flags(), move |ctx| {
            Ok(numeric(ctx, 0).map(op).and_then(finite_or_inf))
        })?;
    }
    for (name, op) in MATH2 {
        conn.create_scalar_function(name, 2, flags(), move |ctx| {
            let result = match (numeric(ctx, 0), numeric(ctx, 1)) {
                (Some(a), Some(b)) => finite_or_inf(op(a, b)),
                _ => None,
            };
            Ok(result)
        })?;
    }
    conn.create_scalar_function("ln", 1, flags(), |ctx| Ok(log_of(ctx, f64::ln)))?;
    conn.create_scalar_function("log", 1, flags(), |ctx| Ok(log_of(ctx, f64::log10)))?;
    conn.create_scalar_function("log10", 1, flags(), |ctx| Ok(log_of(ctx, f64::log10)))?;
    conn.create_scalar_function("log2", 1, flags(), |ctx| Ok(log_of(ctx, f64::log2)))?;
    conn.create_scalar_function("log", 2, flags(), |ctx| Ok(log_base(ctx)))?;
    conn.create_scalar_function("pi", 0, flags(), |_| Ok(std::f64::consts::PI))?;
    Ok(())
}

/// A one-argument function on doubles.
type Unary = fn(f64) -> f64;
/// A two-argument function on doubles.
type Binary = fn(f64, f64) -> f64;

/// `ceil`, `ceiling`, `floor`, `trunc`: integers pass through unchanged, reals are rounded and
/// stay reals (as in SQLite: `floor(1.5)` is `1.0`, `floor(2)` is `2`).
const ROUNDING: [(&str, Unary); 4] = [
    ("ceil", f64::ceil),
    ("ceiling", f64::ceil),
    ("floor", f64::floor),
    ("trunc", f64::trunc),
];

/// One-argument math functions (SQLite's `math1Func`).
const MATH1: [(&str, Unary); 16] = [
    ("acos", f64::acos),
    ("asin", f64::asin),
    ("atan", f64::atan),
    ("acosh", f64::acosh),
    ("asinh", f64::asinh),
    ("atanh", f64::atanh),
    ("cos", f64::cos),
    ("sin", f64::sin),
    ("tan", f64::tan),
    ("cosh", f64::cosh),
    ("sinh", f64::sinh),
    ("tanh", f64::tanh),
    ("exp", f64::exp),
    ("sqrt", f64::sqrt),
    ("degrees", f64::to_degrees),
    ("radians", f64::to_radians),
];

/// Two-argument math functions (SQLite's `math2Func`).
const MATH2: [(&str, Binary); 4] = [
    ("atan2", f64::atan2),
    ("pow", f64::powf),
    ("power", f64::powf),
    // C's fmod: the result has the sign of the dividend, as Rust's `%` on floats.
    ("mod", |a, b| a % b),
];

/// An argument as SQLite's `sqlite3_value_numeric_type` sees it: an integer or a real, or a
/// text that reads as one (numeric affinity); anything else is not a number.
enum Numeric {
    Integer(i64),
    Real(f64),
}

fn numeric_value(value: ValueRef<'_>) -> Option<Numeric> {
    match value {
        ValueRef::Integer(i) => Some(Numeric::Integer(i)),
        ValueRef::Real(r) => Some(Numeric::Real(r)),
        ValueRef::Text(bytes) => {
            let text = std::str::from_utf8(bytes)
                .ok()?
                .trim_matches(is_sqlite_space);
            // Rust would also read "inf", "nan" and "infinity"; SQLite reads none of them.
            if text.is_empty()
                || text
                    .bytes()
                    .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
            {
                return None;
            }
            if let Ok(i) = text.parse::<i64>() {
                return Some(Numeric::Integer(i));
            }
            text.parse::<f64>().ok().map(Numeric::Real)
        }
        ValueRef::Null | ValueRef::Blob(_) => None,
    }
}

fn is_sqlite_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r')
}

/// Argument `index` as a double, or `None` if it is NULL or not a number.
fn numeric(ctx: &Context<'_>, index: usize) -> Option<f64> {
    match numeric_value(ctx.get_raw(index))? {
        Numeric::Integer(i) => Some(i as f64),
        Numeric::Real(r) => Some(r),
    }
}

/// SQLite stores no NaN: a domain error (`acos(2)`, `sqrt(-1)`) is NULL. Infinities stay.
fn finite_or_inf(x: f64) -> Option<f64> {
    (!x.is_nan()).then_some(x)
}

fn rounding(ctx: &Context<'_>, op: fn(f64) -> f64) -> Option<Value> {
    match numeric_value(ctx.get_raw(0))? {
        Numeric::Integer(i) => Some(Value::Integer(i)),
        Numeric::Real(r) => finite_or_inf(op(r)).map(Value::Real),
    }
}

/// `ln`, `log`, `log10`, `log2` of one argument: NULL unless it is a positive number.
fn log_of(ctx: &Context<'_>, op: fn(f64) -> f64) -> Option<f64> {
    let x = numeric(ctx, 0)?;
    if x <= 0.0 {
        return None;
    }
    finite_or_inf(op(x))
}

/// `log(B, X)`: the logarithm of X in base B; NULL unless B > 1 and X > 0 (SQLite's `logFunc`).
fn log_base(ctx: &Context<'_>) -> Option<f64> {
    let base = numeric(ctx, 0)?;
    let x = numeric(ctx, 1)?;
    if base <= 0.0 || x <= 0.0 {
        return None;
    }
    // Base 1 (ln 0) and bases below 1 give NULL in SQLite, not a division by zero or a sign flip.
    let ln_base = base.ln();
    if ln_base <= 0.0 {
        return None;
    }
    finite_or_inf(x.ln() / ln_base)
}

/// The error of a pattern that does not compile (syntax, or beyond the size limit).
#[derive(Debug, thiserror::Error)]
#[error("regexp: invalid pattern: {0}")]
struct BadPattern(String);

/// `X REGEXP Y` calls `regexp(Y, X)`: 1 if the pattern Y matches anywhere in X, 0 if not, NULL
/// if either is NULL. Numbers are matched as their text.
fn regexp(ctx: &Context<'_>) -> rusqlite::Result<Option<bool>> {
    if matches!(ctx.get_raw(0), ValueRef::Null) {
        return Ok(None);
    }
    let subject = match ctx.get_raw(1) {
        ValueRef::Null => return Ok(None),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => std::borrow::Cow::Borrowed(bytes),
        ValueRef::Integer(i) => std::borrow::Cow::Owned(i.to_string().into_bytes()),
        ValueRef::Real(r) => std::borrow::Cow::Owned(real_text(r).into_bytes()),
    };
    // Compiled once per statement while the pattern argument stays the same (SQLite drops the
    // aux data when it changes).
    let pattern: Arc<Regex> = ctx.get_or_create_aux(0, compile_pattern)?;
    let subject = String::from_utf8_lossy(&subject);
    Ok(Some(pattern.is_match(&subject)))
}

fn compile_pattern(value: ValueRef<'_>) -> Result<Regex, BadPattern> {
    let text = match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => real_text(r),
        ValueRef::Null => String::new(),
    };
    RegexBuilder::new(&text)
        .size_limit(REGEXP_COMPILED_SIZE_LIMIT)
        .dfa_size_limit(REGEXP_DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| BadPattern(first_line(&e.to_string())))
}

/// A real as SQLite prints it: at least one decimal (`1.0`, not `1`).
fn real_text(r: f64) -> String {
    if r.is_finite() && r == r.trunc() && r.abs() < 1e15 {
        format!("{r:.1}")
    } else {
        r.to_string()
    }
}

/// regex's errors span several lines (the pattern with a caret); one line reads better in a
/// SQL error message, and the summary line is the one that names the problem.
fn first_line(message: &str) -> String {
    let summary = message.lines().find(|l| l.starts_with("error:"));
    summary
        .or_else(|| message.lines().next())
        .unwrap_or(message)
        .trim()
        .to_string()
}
