//! The log's entries by what they are about: the public log page's search by eval, dataset or
//! model, newest first. Everything matched on is public already (the entries' statements name
//! the eval and dataset digests and the model's name), so the search reveals nothing new.

use proctor_core::digest::Sha256Digest;

use crate::error::Result;
use crate::log::{ENTRY_COLUMNS, EntryKind, LogEntry, entry_from_row};
use crate::rows::to_i64;
use crate::store::Store;

/// Which entries a search keeps: all of them when every field is `None`; otherwise those that
/// match every field given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFilter {
    /// Entries about jobs of this eval component.
    pub eval: Option<Sha256Digest>,
    /// Entries about jobs over this dataset.
    pub dataset: Option<Sha256Digest>,
    /// Entries about jobs on a model of this name (as attestations name it, any vendor's).
    pub model: Option<String>,
    /// Entries of this kind.
    pub kind: Option<EntryKind>,
}

impl Store {
    /// Up to `limit` entries that `filter` keeps, below index `before` (all, when `None`),
    /// newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](crate::StoreError::Database).
    pub async fn log_entries_matching(
        &self,
        filter: &EntryFilter,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<LogEntry>> {
        // Only the conditions given are written, so neither backend has to type a NULL.
        let mut conditions = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        let mut bind = |condition: &str, value: String| {
            binds.push(value);
            conditions.push(condition.replace('?', &format!("${}", binds.len())));
        };
        if let Some(eval) = &filter.eval {
            bind("j.eval_digest = ?", eval.to_string());
        }
        if let Some(dataset) = &filter.dataset {
            bind("j.dataset_digest = ?", dataset.to_string());
        }
        if let Some(model) = &filter.model {
            bind("m.name = ?", model.clone());
        }
        if let Some(kind) = filter.kind {
            bind("e.kind = ?", kind.as_str().to_owned());
        }
        let before_at = binds.len() + 1;
        let limit_at = before_at + 1;
        conditions.push(format!("e.log_index < ${before_at}"));
        let columns = ENTRY_COLUMNS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM log_entries e \
             JOIN jobs j ON j.id = e.job_id JOIN models m ON m.id = j.model_id \
             WHERE {} ORDER BY e.log_index DESC LIMIT ${limit_at}",
            conditions.join(" AND ")
        );
        let mut query = sqlx::query(&sql);
        for value in binds {
            query = query.bind(value);
        }
        let before = match before {
            Some(index) => to_i64(index, "log index")?,
            None => i64::MAX,
        };
        let rows = query
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry_from_row).collect()
    }
}
