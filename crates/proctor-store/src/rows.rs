//! Row decoding: a stored column to the store's types, and the store's unsigned values to and
//! from the databases' signed 64-bit integers.
//!
//! A leaf: it knows only the errors and [`Timestamp`]; every module that reads rows uses it.
//! A value the database cannot hold is [`StoreError::Invalid`] (the caller's); a stored value
//! that does not decode is [`StoreError::Corrupt`] (the database's).

use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Result, StoreError};
use crate::time::Timestamp;

/// A text column holding an id.
pub(crate) fn parse_id<T: FromStr>(row: &AnyRow, column: &'static str) -> Result<T> {
    parse_text(row, column)
}

/// A text column holding a value of a [`FromStr`] type (an id, a `text_enum!`).
pub(crate) fn parse_text<T: FromStr>(row: &AnyRow, column: &'static str) -> Result<T> {
    let text: String = row.try_get(column)?;
    text.parse().map_err(|_| StoreError::Corrupt(column))
}

/// A nullable text column of a [`FromStr`] type.
pub(crate) fn opt_text<T: FromStr>(row: &AnyRow, column: &'static str) -> Result<Option<T>> {
    row.try_get::<Option<String>, _>(column)?
        .map(|text| text.parse().map_err(|_| StoreError::Corrupt(column)))
        .transpose()
}

/// A millisecond column.
pub(crate) fn timestamp(row: &AnyRow, column: &'static str) -> Result<Timestamp> {
    Ok(Timestamp(row.try_get(column)?))
}

/// A nullable millisecond column.
pub(crate) fn opt_timestamp(row: &AnyRow, column: &'static str) -> Result<Option<Timestamp>> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(Timestamp))
}

/// A nullable count column.
pub(crate) fn opt_u64(row: &AnyRow, column: &'static str) -> Result<Option<u64>> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|v| to_u64(v, column))
        .transpose()
}

/// A count for the database; beyond 2^63 it is the caller's error.
pub(crate) fn to_i64(value: u64, what: &'static str) -> Result<i64> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(what))
}

/// [`to_i64`] of an optional count.
pub(crate) fn opt_i64(value: Option<u64>, what: &'static str) -> Result<Option<i64>> {
    value.map(|v| to_i64(v, what)).transpose()
}

/// A stored count; a negative one is corrupt.
pub(crate) fn to_u64(value: i64, what: &'static str) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(what))
}

/// A duration in milliseconds for the database.
pub(crate) fn millis(duration: Duration) -> Result<i64> {
    i64::try_from(duration.as_millis()).map_err(|_| StoreError::Invalid("duration"))
}
