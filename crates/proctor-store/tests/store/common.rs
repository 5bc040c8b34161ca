//! Test databases: a temporary SQLite file always, and a fresh PostgreSQL database per test
//! when `PROCTOR_TEST_POSTGRES_URL` is set (tests run in parallel, so each gets its own
//! database, dropped at the end).

use std::path::PathBuf;

use proctor_attest::Exposure;
use proctor_core::digest::Sha256Digest;
use proctor_store::{
    AccountId, Batch, Block, BlockId, EvalDescription, GrantId, Job, JobId, LogSlot, ModelId,
    NewJob, NewModel, Role, SignError, Step, Stepped, Store, StoreError, Tier, Want,
};
use sqlx::{Connection, Executor, PgConnection};

pub const POSTGRES_ENV: &str = "PROCTOR_TEST_POSTGRES_URL";

/// One database to run a test on.
pub struct TestDb {
    pub url: String,
    /// The SQLite file (to scan its bytes), if this is SQLite.
    pub sqlite_path: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// SQLite, and PostgreSQL when configured.
    pub async fn all() -> anyhow::Result<Vec<TestDb>> {
        let mut dbs = vec![TestDb::sqlite()?];
        if let Ok(admin) = std::env::var(POSTGRES_ENV) {
            dbs.push(TestDb::postgres(&admin).await?);
        }
        Ok(dbs)
    }

    fn sqlite() -> anyhow::Result<TestDb> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("proctor.db");
        Ok(TestDb {
            url: format!("sqlite://{}?mode=rwc", path.display()),
            sqlite_path: Some(path),
            _dir: Some(dir),
            pg: None,
        })
    }

    async fn postgres(admin: &str) -> anyhow::Result<TestDb> {
        let (base, query) = match admin.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin, String::new()),
        };
        let (server, _) = base
            .rsplit_once('/')
            .ok_or_else(|| anyhow::anyhow!("{POSTGRES_ENV} has no database path"))?;
        let name = format!("proctor_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(admin).await?;
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        conn.close().await?;
        Ok(TestDb {
            url: format!("{server}/{name}{query}"),
            sqlite_path: None,
            _dir: None,
            pg: Some((admin.to_owned(), name)),
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    pub async fn store(&self) -> anyhow::Result<Store> {
        Ok(Store::connect(&self.url).await?)
    }

    /// Drops the PostgreSQL database (SQLite's directory goes with `self`).
    pub async fn cleanup(self, store: Store) -> anyhow::Result<()> {
        store.close().await;
        if let Some((admin, name)) = &self.pg {
            let mut conn = PgConnection::connect(admin).await?;
            conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await?;
            conn.close().await?;
        }
        Ok(())
    }
}

/// Runs `body` on every test database, naming the backend in a failure.
#[macro_export]
macro_rules! on_every_backend {
    (|$store:ident, $db:ident| $body:block) => {{
        for $db in $crate::common::TestDb::all().await? {
            let $store = $db.store().await?;
            let result: anyhow::Result<()> = async { $body Ok(()) }.await;
            let backend = $store.backend();
            $db.cleanup($store).await?;
            result.map_err(|e| e.context(format!("on {backend:?}")))?;
        }
        Ok(())
    }};
}

/// Accounts, a model, an eval and a dataset: what a job needs.
pub struct Fixture {
    pub evaluator: AccountId,
    /// The vendor that owns `model`.
    pub vendor: AccountId,
    pub model: ModelId,
    pub eval: Sha256Digest,
    pub dataset: Sha256Digest,
}

impl Fixture {
    pub async fn new(store: &Store) -> anyhow::Result<Fixture> {
        let evaluator = store
            .create_account("lab", Role::Evaluator, Some(Tier::Academic))
            .await?;
        let vendor = store.create_account("acme", Role::Vendor, None).await?;
        let model = store
            .register_model(&NewModel {
                owner: vendor.id,
                name: "arith".into(),
                version: "1".into(),
                adapter: "builtin".into(),
                config: r#"{"model":"builtin:arith"}"#.into(),
                credential: None,
            })
            .await?;
        let description = EvalDescription {
            name: "arith".into(),
            version: "0.1.0".into(),
            metrics: "[]".into(),
        };
        let (eval, _) = store
            .put_eval(evaluator.id, b"\0asm component", &description)
            .await?;
        let (dataset, _) = store
            .put_dataset(evaluator.id, b"{\"a\":1,\"b\":2}\n", 1)
            .await?;
        Ok(Fixture {
            evaluator: evaluator.id,
            vendor: vendor.id,
            model: model.id,
            eval: eval.digest,
            dataset: dataset.digest,
        })
    }

    pub fn job(&self) -> NewJob {
        NewJob {
            evaluator: self.evaluator,
            eval: self.eval,
            dataset: self.dataset,
            model: self.model,
            policy_name: "standard".into(),
            policy_json: "{}".into(),
            policy_digest: Sha256Digest::of(b"{}"),
            concurrency: 4,
            seed: u64::MAX - 7,
            total: 10,
        }
    }
}

/// A stand-in signer: the entry names its kind, job and own index.
pub fn sign(kind: &'static str) -> impl Fn(&Job, LogSlot) -> Result<Vec<u8>, SignError> {
    move |job, slot| Ok(format!("{kind} {} {}", job.id, slot.index).into_bytes())
}

/// [`sign`] for a job accepted under a grant, whose entry also states the dataset's exposure
/// before it: `"{kind} {job} {index} exposure {jobs} {items}"`.
pub fn sign_under(
    kind: &'static str,
) -> impl Fn(&Job, Exposure, LogSlot) -> Result<Vec<u8>, SignError> {
    move |job, exposure, slot| {
        Ok(format!(
            "{kind} {} {} exposure {} {}",
            job.id, slot.index, exposure.jobs, exposure.items
        )
        .into_bytes())
    }
}

/// One job's metering under one grant, a query at a time: each query a block of its own (a
/// meter's smallest lease), each settlement a batch of one.
pub struct OneByOne<'a> {
    store: &'a Store,
    grant: GrantId,
    job: JobId,
}

/// [`OneByOne`] for `job` under `grant`.
pub fn one_by_one(store: &Store, grant: GrantId, job: JobId) -> OneByOne<'_> {
    OneByOne { store, grant, job }
}

impl OneByOne<'_> {
    async fn step(
        &self,
        batch: Option<(BlockId, Batch)>,
        lease: Option<Want>,
    ) -> Result<Stepped, StoreError> {
        let batches: Vec<_> = batch.into_iter().collect();
        self.store
            .meter(Step {
                grant: self.grant,
                job: self.job,
                batches: &batches,
                lease,
            })
            .await
    }

    /// Leases one query of `tokens` worst-case tokens.
    pub async fn reserve(&self, tokens: u64) -> Result<Block, StoreError> {
        self.step(None, Some(Want::one(tokens)))
            .await?
            .lease
            .ok_or(StoreError::Invalid("no lease"))?
    }

    /// Settles a one-query block as the model reported; whether the batch was applied.
    pub async fn settle(&self, block: &Block, input: u64, output: u64) -> Result<bool, StoreError> {
        let batch = Batch {
            settled: 1,
            settled_worst: block.tokens,
            input_tokens: input,
            output_tokens: output,
            ..Batch::default()
        };
        Ok(self.step(Some((block.id, batch)), None).await?.ignored == 0)
    }

    /// Gives a one-query block back (its request failed); whether the batch was applied.
    pub async fn give_back(&self, block: &Block) -> Result<bool, StoreError> {
        let batch = Batch {
            returned: 1,
            returned_tokens: block.tokens,
            ..Batch::default()
        };
        Ok(self.step(Some((block.id, batch)), None).await?.ignored == 0)
    }
}
