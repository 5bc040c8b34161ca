//! A fresh database for each service the bench starts: a SQLite file in a temporary directory,
//! or a new PostgreSQL database on a given server, dropped when the bench is done with it.

use std::fmt;

use anyhow::Context;
use sqlx::{Connection, Executor, PgConnection};

/// Which store a service runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StoreKind {
    /// The embedded default.
    Sqlite,
    /// What replicas share.
    Postgres,
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreKind::Sqlite => "SQLite",
            StoreKind::Postgres => "PostgreSQL",
        })
    }
}

/// One database, fresh.
pub struct Database {
    /// What the service connects to.
    pub url: String,
    /// The SQLite file's directory, removed with `self`.
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL server's URL and the database's name, to drop it.
    postgres: Option<(String, String)>,
}

impl Database {
    /// A new SQLite file.
    pub fn sqlite() -> anyhow::Result<Database> {
        let dir = tempfile::tempdir()?;
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("proctor.db").display()
        );
        Ok(Database {
            url,
            _dir: Some(dir),
            postgres: None,
        })
    }

    /// A new database `proctor_bench_<random>` on the server of `server_url` (any database
    /// of it, e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
    pub async fn postgres(server_url: &str) -> anyhow::Result<Database> {
        let (base, query) = match server_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (server_url, String::new()),
        };
        let (server, _) = base
            .rsplit_once('/')
            .context("the PostgreSQL URL names no database")?;
        let name = format!("proctor_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(server_url)
            .await
            .context("connecting to PostgreSQL")?;
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        conn.close().await?;
        Ok(Database {
            url: format!("{server}/{name}{query}"),
            _dir: None,
            postgres: Some((server_url.to_owned(), name)),
        })
    }

    /// Drops a PostgreSQL database (a SQLite file goes with its directory).
    pub async fn remove(self) -> anyhow::Result<()> {
        if let Some((server_url, name)) = &self.postgres {
            let mut conn = PgConnection::connect(server_url).await?;
            conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await?;
            conn.close().await?;
        }
        Ok(())
    }
}

/// The stores to run on: SQLite, and PostgreSQL when `postgres` names a server that answers.
/// An unreachable one is reported in the returned note instead.
pub async fn stores(postgres: Option<&str>) -> (Vec<StoreKind>, Option<String>) {
    let Some(url) = postgres else {
        return (
            vec![StoreKind::Sqlite],
            Some(format!(
                "PostgreSQL rows skipped: no server given (--postgres or {})",
                crate::POSTGRES_ENV
            )),
        );
    };
    match PgConnection::connect(url).await {
        Ok(conn) => {
            let _ = conn.close().await;
            (vec![StoreKind::Sqlite, StoreKind::Postgres], None)
        }
        Err(err) => (
            vec![StoreKind::Sqlite],
            Some(format!(
                "PostgreSQL rows skipped: {url} is unreachable ({err})"
            )),
        ),
    }
}

/// A fresh database of `kind`.
pub async fn fresh(kind: StoreKind, postgres: Option<&str>) -> anyhow::Result<Database> {
    match (kind, postgres) {
        (StoreKind::Sqlite, _) => Database::sqlite(),
        (StoreKind::Postgres, Some(url)) => Database::postgres(url).await,
        (StoreKind::Postgres, None) => anyhow::bail!("no PostgreSQL server given"),
    }
}
