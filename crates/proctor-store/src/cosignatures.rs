//! Witnesses' cosignatures of the log's checkpoints, and the size each witness last cosigned
//! (the old size of the next `add-checkpoint` request to it).
//!
//! A witness is named by its verifier key text, so a witness whose key changed is another
//! witness. The lines are stored only after the server verified them against its own
//! checkpoint; this module checks nothing cryptographic.

use proctor_attest::merkle::Hash;
use sqlx::Row;

use crate::error::{Result, StoreError};
use crate::rows::{to_i64, to_u64};
use crate::store::Store;

/// A verified cosignature of the log's checkpoint of `size` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's verifier key text.
    pub witness: String,
    /// The checkpoint's size.
    pub size: u64,
    /// The checkpoint's root hash.
    pub root: Hash,
    /// The signed-note signature line, without its newline.
    pub line: String,
    /// The witness's timestamp in it (seconds since the Unix epoch).
    pub cosigned_at: u64,
}

/// The cosignatures of one tree size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedSize {
    /// The size.
    pub size: u64,
    /// The cosignatures of it, by witness.
    pub cosignatures: Vec<Cosignature>,
}

impl Store {
    /// The size `witness` last cosigned, as far as the service knows (`None`: never asked).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn witness_size(&self, witness: &str) -> Result<Option<u64>> {
        let size: Option<i64> =
            sqlx::query_scalar("SELECT tree_size FROM witness_sizes WHERE witness = $1")
                .bind(witness)
                .fetch_optional(&self.pool)
                .await?;
        size.map(|s| to_u64(s, "witness size")).transpose()
    }

    /// Whether a cosignature of the tree of `size` entries by `witness` is stored.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`], [`StoreError::Invalid`] for a size past 2^63 - 1.
    pub async fn has_cosignature(&self, witness: &str, size: u64) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT tree_size FROM log_cosignatures WHERE witness = $1 AND tree_size = $2",
        )
        .bind(witness)
        .bind(to_i64(size, "cosigned size")?)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// Records that `witness` holds a checkpoint of `size` entries (what its 409 said).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`], [`StoreError::Invalid`] for a size past 2^63 - 1.
    pub async fn set_witness_size(&self, witness: &str, size: u64) -> Result<()> {
        let sql = self.backend.sql(
            "INSERT INTO witness_sizes (witness, tree_size, updated_at) VALUES ($1, $2, {now}) \
             ON CONFLICT (witness) DO UPDATE SET tree_size = excluded.tree_size, \
             updated_at = excluded.updated_at",
        );
        sqlx::query(&sql)
            .bind(witness)
            .bind(to_i64(size, "witness size")?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a verified cosignature and, in the same transaction, the witness's size.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`], [`StoreError::Invalid`] for a size of 0 or past 2^63 - 1.
    pub async fn add_cosignature(&self, cosignature: &Cosignature) -> Result<()> {
        if cosignature.size == 0 {
            return Err(StoreError::Invalid("cosigned size 0"));
        }
        let size = to_i64(cosignature.size, "cosigned size")?;
        let cosigned_at = to_i64(cosignature.cosigned_at, "cosignature time")?;
        let insert = self.backend.sql(
            "INSERT INTO log_cosignatures (witness, tree_size, root, line, cosigned_at, received_at) \
             VALUES ($1, $2, $3, $4, $5, {now}) ON CONFLICT (witness, tree_size) DO UPDATE SET \
             root = excluded.root, line = excluded.line, cosigned_at = excluded.cosigned_at, \
             received_at = excluded.received_at",
        );
        let size_sql = self.backend.sql(
            "INSERT INTO witness_sizes (witness, tree_size, updated_at) VALUES ($1, $2, {now}) \
             ON CONFLICT (witness) DO UPDATE SET tree_size = excluded.tree_size, \
             updated_at = excluded.updated_at",
        );
        self.transaction(async |tx| {
            sqlx::query(&insert)
                .bind(&cosignature.witness)
                .bind(size)
                .bind(cosignature.root.to_vec())
                .bind(&cosignature.line)
                .bind(cosigned_at)
                .execute(&mut *tx.inner)
                .await?;
            sqlx::query(&size_sql)
                .bind(&cosignature.witness)
                .bind(size)
                .execute(&mut *tx.inner)
                .await?;
            Ok(())
        })
        .await
    }

    /// The largest tree sizes that at least `quorum` witnesses cosigned, largest first, at
    /// most `limit` of them, each with its cosignatures (any witness's: the caller keeps the
    /// ones it trusts and checks the quorum again).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn cosigned_sizes(&self, quorum: usize, limit: u32) -> Result<Vec<CosignedSize>> {
        let quorum = i64::try_from(quorum).map_err(|_| StoreError::Invalid("quorum"))?;
        let sql = "SELECT c.witness, c.tree_size, c.root, c.line, c.cosigned_at \
                   FROM log_cosignatures c JOIN ( \
                       SELECT tree_size FROM log_cosignatures GROUP BY tree_size \
                       HAVING COUNT(*) >= $1 ORDER BY tree_size DESC LIMIT $2 \
                   ) s ON s.tree_size = c.tree_size \
                   ORDER BY c.tree_size DESC, c.witness";
        let rows = sqlx::query(sql)
            .bind(quorum)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut sizes: Vec<CosignedSize> = Vec::new();
        for row in &rows {
            let root: Vec<u8> = row.try_get("root")?;
            let cosignature = Cosignature {
                witness: row.try_get("witness")?,
                size: to_u64(row.try_get("tree_size")?, "cosigned size")?,
                root: root
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("log_cosignatures.root"))?,
                line: row.try_get("line")?,
                cosigned_at: to_u64(row.try_get("cosigned_at")?, "cosignature time")?,
            };
            match sizes.last_mut() {
                Some(last) if last.size == cosignature.size => last.cosignatures.push(cosignature),
                _ => sizes.push(CosignedSize {
                    size: cosignature.size,
                    cosignatures: vec![cosignature],
                }),
            }
        }
        Ok(sizes)
    }
}
