//! Results: [`Rows`] (the columns, the rows, the affected row count and the last inserted rowid
//! of one statement) and [`Row`] (one row, read by index or column name with typed getters, or
//! decoded into a struct through serde, see [`crate::de`]).

use std::sync::Arc;

use serde::de::{Deserialize, DeserializeOwned};
use skylite_proto::StmtResult;

use crate::error::{Error, Result};
use crate::value::{FromValue, Value};

/// The columns of a result, shared by its rows.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Columns {
    pub(crate) names: Vec<String>,
    pub(crate) decltypes: Vec<Option<String>>,
}

/// The outcome of one statement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    columns: Arc<Columns>,
    rows: Vec<Row>,
    rows_affected: u64,
    last_insert_rowid: Option<i64>,
}

impl Rows {
    pub(crate) fn from_result(result: StmtResult) -> Rows {
        let columns = Arc::new(Columns {
            names: result
                .cols
                .iter()
                .map(|c| c.name.clone().unwrap_or_default())
                .collect(),
            decltypes: result.cols.into_iter().map(|c| c.decltype).collect(),
        });
        let rows = result
            .rows
            .into_iter()
            .map(|values| Row {
                columns: columns.clone(),
                values,
            })
            .collect();
        Rows {
            columns,
            rows,
            rows_affected: result.affected_row_count,
            last_insert_rowid: result.last_insert_rowid,
        }
    }

    /// Column names, in order (empty for a column SQLite gave no name).
    pub fn columns(&self) -> &[String] {
        &self.columns.names
    }

    /// Declared types of the columns (`None` for expressions).
    pub fn column_types(&self) -> &[Option<String>] {
        &self.columns.decltypes
    }

    /// Rows changed by an `INSERT`, `UPDATE` or `DELETE`.
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }

    /// The rowid of the last row inserted on the connection, if the statement inserted.
    pub fn last_insert_rowid(&self) -> Option<i64> {
        self.last_insert_rowid
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True if there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `i`.
    pub fn get(&self, i: usize) -> Option<&Row> {
        self.rows.get(i)
    }

    /// The first row.
    pub fn first(&self) -> Option<&Row> {
        self.rows.first()
    }

    /// The rows.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Iterates over the rows.
    pub fn iter(&self) -> std::slice::Iter<'_, Row> {
        self.rows.iter()
    }

    /// Decodes every row into `T` (columns map to fields by name; see [`crate::de`]).
    ///
    /// ```
    /// # fn demo(rows: skylite_client::Rows) -> skylite_client::Result<()> {
    /// #[derive(serde::Deserialize)]
    /// struct Note { id: i64, body: String, tag: Option<String> }
    /// let notes: Vec<Note> = rows.deserialize()?;
    /// # Ok(()) }
    /// ```
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.rows.iter().map(|r| r.deserialize()).collect()
    }
}

impl IntoIterator for Rows {
    type Item = Row;
    type IntoIter = std::vec::IntoIter<Row>;
    fn into_iter(self) -> Self::IntoIter {
        self.rows.into_iter()
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = &'a Row;
    type IntoIter = std::slice::Iter<'a, Row>;
    fn into_iter(self) -> Self::IntoIter {
        self.rows.iter()
    }
}

/// One row of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Arc<Columns>,
    values: Vec<Value>,
}

/// How a column is named in [`Row::get`]: by 0-based index or by name.
pub trait ColumnIndex {
    /// The 0-based index of the column in `row`.
    fn index_in(&self, row: &Row) -> Result<usize>;
}

impl ColumnIndex for usize {
    fn index_in(&self, row: &Row) -> Result<usize> {
        if *self < row.values.len() {
            Ok(*self)
        } else {
            Err(Error::NoSuchColumn(format!(
                "index {self} (the row has {} columns)",
                row.values.len()
            )))
        }
    }
}

impl ColumnIndex for &str {
    fn index_in(&self, row: &Row) -> Result<usize> {
        let names = &row.columns.names;
        names
            .iter()
            .position(|n| n == self)
            .or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(self)))
            .ok_or_else(|| Error::NoSuchColumn(format!("{self:?} (columns: {names:?})")))
    }
}

impl ColumnIndex for &String {
    fn index_in(&self, row: &Row) -> Result<usize> {
        self.as_str().index_in(row)
    }
}

impl Row {
    /// Column `idx` (an index or a name) as `T`.
    ///
    /// ```
    /// # fn demo(row: &skylite_client::Row) -> skylite_client::Result<()> {
    /// let id: i64 = row.get(0)?;
    /// let body: &str = row.get("body")?;
    /// let tag: Option<String> = row.get("tag")?;
    /// # Ok(()) }
    /// ```
    pub fn get<'a, T: FromValue<'a>>(&'a self, idx: impl ColumnIndex) -> Result<T> {
        let i = idx.index_in(self)?;
        T::from_value(&self.values[i]).map_err(|e| match e {
            Error::Decode(m) => Error::Decode(format!("column {:?}: {m}", self.column_name(i))),
            other => other,
        })
    }

    /// Column `idx` as the raw [`Value`].
    pub fn get_value(&self, idx: impl ColumnIndex) -> Result<&Value> {
        let i = idx.index_in(self)?;
        Ok(&self.values[i])
    }

    /// The values of the row.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Takes the values out of the row.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True for a row without columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The name of column `i` (empty if out of range or unnamed).
    pub fn column_name(&self, i: usize) -> &str {
        self.columns.names.get(i).map(String::as_str).unwrap_or("")
    }

    /// The column names.
    pub fn columns(&self) -> &[String] {
        &self.columns.names
    }

    /// Decodes the row into `T`: a struct or map (columns by name), a tuple or sequence
    /// (columns in order), or a single value if the row has one column. See [`crate::de`].
    pub fn deserialize<'a, T: Deserialize<'a>>(&'a self) -> Result<T> {
        crate::de::from_row(&self.columns.names, &self.values)
    }
}
