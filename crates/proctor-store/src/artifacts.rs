//! What jobs are made of: models (owned by vendors), evals and datasets (content-addressed).
//!
//! Evals and datasets are keyed by the sha256 of their bytes. Uploading bytes that are already
//! stored keeps the one copy and records the uploader as an owner too, so an upload is
//! idempotent and an evaluator may use what it uploaded, whoever uploaded it first. What an
//! owner reads of them is its own: its upload's time, and whether the bytes were new *to it*;
//! never whether, or when, another account uploaded the same bytes (that would tell one
//! evaluator which private dataset another holds).

use proctor_core::digest::Sha256Digest;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Result, StoreError, classify};
use crate::ids::{AccountId, ModelId};
use crate::rows::{parse_id, parse_text, timestamp, to_i64, to_u64};
use crate::store::{Store, Tx};
use crate::time::Timestamp;

/// A model to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewModel {
    /// The vendor account that owns it.
    pub owner: AccountId,
    /// Unique among the vendor's models.
    pub name: String,
    /// The version the vendor states (attested with every result).
    pub version: String,
    /// The adapter kind: `openai`, `anthropic` or `builtin`.
    pub adapter: String,
    /// The adapter's configuration, JSON text (endpoint, model field, limits).
    pub config: String,
    /// The credential, sealed by the server; the store keeps the bytes as they are.
    pub credential: Option<Vec<u8>>,
}

/// A registered model. Its credential is not here: read it with
/// [`Store::model_credential`], so it cannot slip into a response by accident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// Its id.
    pub id: ModelId,
    /// The vendor that owns it.
    pub owner: AccountId,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The adapter kind.
    pub adapter: String,
    /// The adapter configuration, JSON text.
    pub config: String,
    /// Whether a credential is stored.
    pub has_credential: bool,
    /// When it was registered.
    pub created_at: Timestamp,
}

/// An eval's metadata (its component bytes come from [`Store::eval_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalMeta {
    /// sha256 of the component.
    pub digest: Sha256Digest,
    /// The name `describe` returned.
    pub name: String,
    /// The version `describe` returned.
    pub version: String,
    /// The metric declarations, JSON text.
    pub metrics: String,
    /// The component's size in bytes.
    pub size: u64,
    /// When its owner uploaded it (the first upload, for a read without an owner).
    pub created_at: Timestamp,
}

/// What `describe` said about an eval, stored beside its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalDescription {
    /// The eval's name.
    pub name: String,
    /// The eval's version.
    pub version: String,
    /// The metric declarations, JSON text.
    pub metrics: String,
}

/// A dataset's metadata (its bytes come from [`Store::dataset_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetMeta {
    /// sha256 of the file.
    pub digest: Sha256Digest,
    /// Number of items (lines).
    pub items: u64,
    /// The file's size in bytes.
    pub size: u64,
    /// When its owner uploaded it (the first upload, for a read without an owner).
    pub created_at: Timestamp,
}

/// Whether an upload was new to its uploader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// The uploader had not uploaded these bytes before (whether or not another had).
    Created,
    /// The uploader had uploaded the same bytes already; nothing changed.
    Existing,
}

const MODEL_COLUMNS: &str = "id, owner_id, name, version, adapter, config, credential IS NOT NULL AS has_credential, created_at";
const EVAL_COLUMNS: &str =
    "e.digest, e.name, e.version, e.metrics, LENGTH(e.bytes) AS size, e.created_at";
const DATASET_COLUMNS: &str = "d.digest, d.items, LENGTH(d.bytes) AS size, d.created_at";
/// An owner's view: its own upload's time.
const OWNED_EVAL: &str = "SELECT e.digest, e.name, e.version, e.metrics, LENGTH(e.bytes) AS size, \
     o.created_at FROM evals e JOIN eval_owners o ON o.digest = e.digest";
const OWNED_DATASET: &str = "SELECT d.digest, d.items, LENGTH(d.bytes) AS size, o.created_at \
     FROM datasets d JOIN dataset_owners o ON o.digest = d.digest";

/// What an upload makes its uploader an owner of.
#[derive(Clone, Copy)]
enum Owned {
    Eval,
    Dataset,
}

/// Records `owner` as an owner of the uploaded artifact (content-addressed, so uploading it
/// again changes nothing); whether it is new to `owner`.
async fn own(tx: &mut Tx, what: Owned, digest: &Sha256Digest, owner: AccountId) -> Result<Upload> {
    let (table, entity) = match what {
        Owned::Eval => ("eval_owners", "eval owner"),
        Owned::Dataset => ("dataset_owners", "dataset owner"),
    };
    let sql = tx.backend.sql(&format!(
        "INSERT INTO {table} (digest, account_id, created_at) VALUES ($1, $2, {{now}}) \
         ON CONFLICT (digest, account_id) DO NOTHING"
    ));
    let inserted = sqlx::query(&sql)
        .bind(digest.to_hex())
        .bind(owner.to_string())
        .execute(&mut *tx.inner)
        .await
        .map_err(|e| classify(e, entity, "account"))?
        .rows_affected();
    Ok(if inserted > 0 {
        Upload::Created
    } else {
        Upload::Existing
    })
}

fn model_from_row(row: &AnyRow) -> Result<Model> {
    // A boolean expression comes back as an integer on SQLite and a bool on PostgreSQL.
    let has_credential = match row.try_get::<bool, _>("has_credential") {
        Ok(b) => b,
        Err(_) => row.try_get::<i64, _>("has_credential")? != 0,
    };
    Ok(Model {
        id: parse_id(row, "id")?,
        owner: parse_id(row, "owner_id")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        adapter: row.try_get("adapter")?,
        config: row.try_get("config")?,
        has_credential,
        created_at: timestamp(row, "created_at")?,
    })
}

fn eval_from_row(row: &AnyRow) -> Result<EvalMeta> {
    Ok(EvalMeta {
        digest: parse_text(row, "digest")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        metrics: row.try_get("metrics")?,
        size: to_u64(row.try_get("size")?, "eval size")?,
        created_at: timestamp(row, "created_at")?,
    })
}

fn dataset_from_row(row: &AnyRow) -> Result<DatasetMeta> {
    Ok(DatasetMeta {
        digest: parse_text(row, "digest")?,
        items: to_u64(row.try_get("items")?, "dataset items")?,
        size: to_u64(row.try_get("size")?, "dataset size")?,
        created_at: timestamp(row, "created_at")?,
    })
}

impl Store {
    /// Registers a model.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when the vendor has a model of that name;
    /// [`StoreError::NotFound`] for an unknown owner.
    pub async fn register_model(&self, model: &NewModel) -> Result<Model> {
        if model.name.is_empty() {
            return Err(StoreError::Invalid("model name"));
        }
        let sql = self.backend.sql(&format!(
            "INSERT INTO models (id, owner_id, name, version, adapter, config, credential, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, {{now}}) RETURNING {MODEL_COLUMNS}"
        ));
        let row = sqlx::query(&sql)
            .bind(ModelId::new().to_string())
            .bind(model.owner.to_string())
            .bind(&model.name)
            .bind(&model.version)
            .bind(&model.adapter)
            .bind(&model.config)
            .bind(model.credential.as_deref())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| classify(e, "model name", "account"))?;
        model_from_row(&row)
    }

    /// A model by id.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn model(&self, id: ModelId) -> Result<Model> {
        let sql = format!("SELECT {MODEL_COLUMNS} FROM models WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("model"))?;
        model_from_row(&row)
    }

    /// A vendor's model by name.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn model_by_name(&self, owner: AccountId, name: &str) -> Result<Model> {
        let sql = format!("SELECT {MODEL_COLUMNS} FROM models WHERE owner_id = $1 AND name = $2");
        let row = sqlx::query(&sql)
            .bind(owner.to_string())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("model"))?;
        model_from_row(&row)
    }

    /// A vendor's models, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn models_of(&self, owner: AccountId) -> Result<Vec<Model>> {
        let sql = format!(
            "SELECT {MODEL_COLUMNS} FROM models WHERE owner_id = $1 ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(owner.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(model_from_row).collect()
    }

    /// The sealed credential of a model (`None` when it has none). For the worker that calls
    /// the model; no route returns it.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown model.
    pub async fn model_credential(&self, id: ModelId) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT credential FROM models WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("model"))?;
        Ok(row.try_get("credential")?)
    }

    /// Stores an eval component uploaded by `owner` (idempotent: see the module docs).
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown owner.
    pub async fn put_eval(
        &self,
        owner: AccountId,
        bytes: &[u8],
        description: &EvalDescription,
    ) -> Result<(EvalMeta, Upload)> {
        let digest = Sha256Digest::of(bytes);
        self.transaction(async |tx| {
            let sql = self.backend.sql(
                "INSERT INTO evals (digest, bytes, name, version, metrics, created_at) \
                 VALUES ($1, $2, $3, $4, $5, {now}) ON CONFLICT (digest) DO NOTHING",
            );
            sqlx::query(&sql)
                .bind(digest.to_hex())
                .bind(bytes)
                .bind(&description.name)
                .bind(&description.version)
                .bind(&description.metrics)
                .execute(&mut *tx.inner)
                .await?;
            let upload = own(tx, Owned::Eval, &digest, owner).await?;
            let row = sqlx::query(&format!(
                "{OWNED_EVAL} WHERE e.digest = $1 AND o.account_id = $2"
            ))
            .bind(digest.to_hex())
            .bind(owner.to_string())
            .fetch_one(&mut *tx.inner)
            .await?;
            Ok((eval_from_row(&row)?, upload))
        })
        .await
    }

    /// An eval's metadata.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn eval(&self, digest: &Sha256Digest) -> Result<EvalMeta> {
        let sql = format!("SELECT {EVAL_COLUMNS} FROM evals e WHERE e.digest = $1");
        let row = sqlx::query(&sql)
            .bind(digest.to_hex())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("eval"))?;
        eval_from_row(&row)
    }

    /// An eval's component bytes.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn eval_bytes(&self, digest: &Sha256Digest) -> Result<Vec<u8>> {
        sqlx::query_scalar("SELECT bytes FROM evals WHERE digest = $1")
            .bind(digest.to_hex())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("eval"))
    }

    /// The evals `owner` uploaded, newest upload first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn evals_of(&self, owner: AccountId) -> Result<Vec<EvalMeta>> {
        let sql =
            format!("{OWNED_EVAL} WHERE o.account_id = $1 ORDER BY o.created_at DESC, e.digest");
        let rows = sqlx::query(&sql)
            .bind(owner.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(eval_from_row).collect()
    }

    /// The eval as `owner` uploaded it (its upload's time); `None` when `owner` did not
    /// upload it, stored or not.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn eval_of(
        &self,
        owner: AccountId,
        digest: &Sha256Digest,
    ) -> Result<Option<EvalMeta>> {
        let sql = format!("{OWNED_EVAL} WHERE e.digest = $1 AND o.account_id = $2");
        let row = sqlx::query(&sql)
            .bind(digest.to_hex())
            .bind(owner.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(eval_from_row).transpose()
    }

    /// Whether `account` uploaded the eval.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn owns_eval(&self, account: AccountId, digest: &Sha256Digest) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM eval_owners WHERE digest = $1 AND account_id = $2",
        )
        .bind(digest.to_hex())
        .bind(account.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Stores a dataset uploaded by `owner` with `items` items (idempotent: see the module
    /// docs). The caller has parsed and counted it.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown owner.
    pub async fn put_dataset(
        &self,
        owner: AccountId,
        bytes: &[u8],
        items: u64,
    ) -> Result<(DatasetMeta, Upload)> {
        let digest = Sha256Digest::of(bytes);
        self.transaction(async |tx| {
            let sql = self.backend.sql(
                "INSERT INTO datasets (digest, bytes, items, created_at) VALUES ($1, $2, $3, {now}) \
                 ON CONFLICT (digest) DO NOTHING",
            );
            sqlx::query(&sql)
                .bind(digest.to_hex())
                .bind(bytes)
                .bind(to_i64(items, "dataset items")?)
                .execute(&mut *tx.inner)
                .await?;
            let upload = own(tx, Owned::Dataset, &digest, owner).await?;
            let row = sqlx::query(&format!(
                "{OWNED_DATASET} WHERE d.digest = $1 AND o.account_id = $2"
            ))
            .bind(digest.to_hex())
            .bind(owner.to_string())
            .fetch_one(&mut *tx.inner)
            .await?;
            Ok((dataset_from_row(&row)?, upload))
        })
        .await
    }

    /// A dataset's metadata.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn dataset(&self, digest: &Sha256Digest) -> Result<DatasetMeta> {
        let sql = format!("SELECT {DATASET_COLUMNS} FROM datasets d WHERE d.digest = $1");
        let row = sqlx::query(&sql)
            .bind(digest.to_hex())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("dataset"))?;
        dataset_from_row(&row)
    }

    /// A dataset's bytes.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn dataset_bytes(&self, digest: &Sha256Digest) -> Result<Vec<u8>> {
        sqlx::query_scalar("SELECT bytes FROM datasets WHERE digest = $1")
            .bind(digest.to_hex())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("dataset"))
    }

    /// The datasets `owner` uploaded, newest upload first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn datasets_of(&self, owner: AccountId) -> Result<Vec<DatasetMeta>> {
        let sql =
            format!("{OWNED_DATASET} WHERE o.account_id = $1 ORDER BY o.created_at DESC, d.digest");
        let rows = sqlx::query(&sql)
            .bind(owner.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(dataset_from_row).collect()
    }

    /// The dataset as `owner` uploaded it (its upload's time); `None` when `owner` did not
    /// upload it, stored or not.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn dataset_of(
        &self,
        owner: AccountId,
        digest: &Sha256Digest,
    ) -> Result<Option<DatasetMeta>> {
        let sql = format!("{OWNED_DATASET} WHERE d.digest = $1 AND o.account_id = $2");
        let row = sqlx::query(&sql)
            .bind(digest.to_hex())
            .bind(owner.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(dataset_from_row).transpose()
    }

    /// The bytes of evals and datasets `owner` holds: each it uploaded counts in full,
    /// whoever else holds the same bytes (its storage quota counts them).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn stored_bytes_of(&self, owner: AccountId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT SUM(LENGTH(e.bytes)) FROM evals e \
             JOIN eval_owners o ON o.digest = e.digest WHERE o.account_id = $1), 0) \
             + COALESCE((SELECT SUM(LENGTH(d.bytes)) FROM datasets d \
             JOIN dataset_owners o ON o.digest = d.digest WHERE o.account_id = $2), 0)",
        )
        .bind(owner.to_string())
        .bind(owner.to_string())
        .fetch_one(&self.pool)
        .await?;
        to_u64(n, "stored bytes")
    }

    /// Whether `account` uploaded the dataset.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn owns_dataset(&self, account: AccountId, digest: &Sha256Digest) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM dataset_owners WHERE digest = $1 AND account_id = $2",
        )
        .bind(digest.to_hex())
        .bind(account.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }
}
