//! A log that cannot fork silently: a database restored from a backup, or replaced while the
//! server runs, makes it refuse to sign (at start, naming both sizes; while running, 503
//! `log_fork`, nothing written), and `proctor log rotate` begins a new log under a new origin
//! and key, so no key ever signs two different heads for one size.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use proctor_attest::note::SignedNote;
use proctor_attest::{Checkpoint, VerifyingKey};
use proctor_server::log_guard::LOG_HEAD_FILE;
use proctor_server::rotation::{self, RETIRED_DIR, RotateError};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{AnyConnection, Connection, Executor};

use crate::common::{Body, TestDb, TestServer, code, str_of};

const LEASE: Duration = Duration::from_secs(6);
const NEW_ORIGIN: &str = "proctor.local/log-2";

/// Every checkpoint a test saw, by the key that signed it and its size: one root each, or the
/// log forked.
#[derive(Default)]
struct Seen(HashMap<(String, u64), [u8; 32]>);

impl Seen {
    /// Fetches the server's checkpoint and key, verifies one with the other and records it.
    async fn checkpoint(&mut self, s: &TestServer) -> anyhow::Result<Checkpoint> {
        let (status, note) = s
            .call_raw("GET", "/v1/log/checkpoint", None, Body::None)
            .await?;
        anyhow::ensure!(status == StatusCode::OK, "{status}");
        let (status, pem) = s
            .call_raw("GET", "/v1/public-key", None, Body::None)
            .await?;
        anyhow::ensure!(status == StatusCode::OK, "{status}");
        let key = VerifyingKey::from_pem(std::str::from_utf8(&pem)?)?;
        let checkpoint = Checkpoint::open(&note, &key)?;
        let earlier = self
            .0
            .insert((key.key_id(), checkpoint.size), checkpoint.root);
        anyhow::ensure!(
            earlier.is_none_or(|root| root == checkpoint.root),
            "key {} signed two different checkpoints of {} entries",
            key.key_id(),
            checkpoint.size
        );
        Ok(checkpoint)
    }
}

/// A vendor with the arith model granted to an academic evaluator; the evaluator's token and
/// the model's id.
async fn parties(s: &TestServer) -> anyhow::Result<(String, String)> {
    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    s.grant(&vendor, &model, json!({"tier": "academic"}), json!({}))
        .await?;
    Ok((evaluator, model))
}

/// Runs one job to its end: two log entries (its pre-registration and its result).
async fn run_job(s: &TestServer, evaluator: &str, model: &str) -> anyhow::Result<String> {
    let (status, job) = s.submit_arith(evaluator, model).await?;
    anyhow::ensure!(status == StatusCode::CREATED, "{status} {job}");
    let id = str_of(&job, "id")?;
    let view = s
        .wait_ended(evaluator, &id, Duration::from_secs(60))
        .await?;
    anyhow::ensure!(view["status"] == "succeeded", "{view}");
    Ok(id)
}

async fn start(db: &TestDb, data: &Path, origin: &str) -> anyhow::Result<TestServer> {
    let origin = origin.to_owned();
    TestServer::start_configured(db, data, 1, (LEASE, 3), move |config| {
        config.origin = origin;
    })
    .await
}

fn head_on_disk(data: &Path) -> anyhow::Result<Checkpoint> {
    let bytes = std::fs::read(data.join(LOG_HEAD_FILE))?;
    Ok(Checkpoint::parse_unverified(&bytes)?.0)
}

async fn connect(db: &TestDb) -> anyhow::Result<AnyConnection> {
    sqlx::any::install_default_drivers();
    Ok(AnyConnection::connect(&db.url).await?)
}

/// Copies the log's three tables aside, as `{name}_head` and so on.
async fn snapshot_log(db: &TestDb, name: &str) -> anyhow::Result<()> {
    let mut conn = connect(db).await?;
    for table in ["head", "nodes", "entries"] {
        conn.execute(format!("CREATE TABLE {name}_{table} AS SELECT * FROM log_{table}").as_str())
            .await?;
    }
    conn.close().await?;
    Ok(())
}

/// Puts the log's tables back as [`snapshot_log`] copied them, under the running server: what
/// restoring or replacing the database does to its log.
async fn restore_log(db: &TestDb, name: &str) -> anyhow::Result<()> {
    let mut conn = connect(db).await?;
    let sql = format!(
        "DELETE FROM log_entries; DELETE FROM log_nodes; \
         INSERT INTO log_nodes SELECT * FROM {name}_nodes; \
         INSERT INTO log_entries SELECT * FROM {name}_entries; \
         UPDATE log_head SET size = (SELECT size FROM {name}_head), \
                             root = (SELECT root FROM {name}_head)"
    );
    conn.execute(sql.as_str()).await?;
    conn.close().await?;
    Ok(())
}

async fn count(db: &TestDb, sql: &str) -> anyhow::Result<i64> {
    let mut conn = connect(db).await?;
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restored_backup_stops_the_start_naming_both_sizes_until_the_log_is_rotated()
-> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let file = db
        .sqlite_path
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no file"))?;
    let data = tempfile::tempdir()?;
    let backups = tempfile::tempdir()?;
    let backup = backups.path().join("backup.db");
    let mut seen = Seen::default();

    let s = start(&db, data.path(), "proctor.local/log").await?;
    let (evaluator, model) = parties(&s).await?;
    run_job(&s, &evaluator, &model).await?;
    assert_eq!(seen.checkpoint(&s).await?.size, 2);
    s.stop().await;
    // The backup, taken consistently (the server is stopped, and VACUUM INTO copies one
    // snapshot).
    let mut conn = connect(&db).await?;
    conn.execute(format!("VACUUM INTO '{}'", backup.display()).as_str())
        .await?;
    conn.close().await?;

    let s = start(&db, data.path(), "proctor.local/log").await?;
    run_job(&s, &evaluator, &model).await?;
    run_job(&s, &evaluator, &model).await?;
    let signed = seen.checkpoint(&s).await?;
    assert_eq!(signed.size, 6);
    s.stop().await;
    let old_key = key_of(data.path())?;

    // The restore.
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", file.display());
        if Path::new(&path).exists() {
            std::fs::remove_file(&path)?;
        }
    }
    std::fs::copy(&backup, &file)?;
    let err = match start(&db, data.path(), "proctor.local/log").await {
        Ok(s) => {
            let size = s.log_size().await;
            s.stop().await;
            anyhow::bail!("a server on the restored backup started and signed {size:?}");
        }
        Err(err) => format!("{err:#}"),
    };
    assert!(
        err.contains(
            "the database's log has 2 entries but this service signed a checkpoint of 6 entries"
        ),
        "{err}"
    );
    assert_eq!(
        head_on_disk(data.path())?,
        signed,
        "the remembered head stays"
    );

    // The recovery: a new origin (the same one is refused), a new key.
    let same = rotation::rotate(data.path(), &db.url, "proctor.local/log").await;
    assert!(matches!(same, Err(RotateError::SameOrigin(_))), "{same:?}");
    let rotated = rotation::rotate(data.path(), &db.url, NEW_ORIGIN).await?;
    assert_eq!(rotated.head.size, 2);
    assert_eq!(rotated.retired_head.as_ref().map(|c| c.size), Some(6));
    assert_ne!(rotated.key, old_key.key_id());

    // The retired key and what it signed are kept, with a note it signed naming its successor.
    let retired = data.path().join(RETIRED_DIR);
    let id = old_key.key_id();
    for file in [
        format!("{id}.pem"),
        format!("{id}.public.pem"),
        format!("{id}.checkpoint"),
    ] {
        assert!(retired.join(&file).exists(), "{file}");
    }
    let last = Checkpoint::open(
        &std::fs::read(retired.join(format!("{id}.checkpoint")))?,
        &old_key,
    )?;
    assert_eq!(last, signed);
    let note = SignedNote::parse(&std::fs::read_to_string(&rotated.note)?)?;
    note.verify("proctor.local/log", &old_key)?;
    assert!(
        note.text.contains(&format!(
            "successor origin {NEW_ORIGIN}\nsuccessor key {}\n",
            rotated.key
        )),
        "{}",
        note.text
    );

    // The old origin with the new key is refused, naming the way out.
    let err = match start(&db, data.path(), "proctor.local/log").await {
        Ok(s) => {
            s.stop().await;
            anyhow::bail!("started under the retired origin");
        }
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains(&format!("--origin {NEW_ORIGIN}")), "{err}");

    let s = start(&db, data.path(), NEW_ORIGIN).await?;
    let first = seen.checkpoint(&s).await?;
    assert_eq!((first.origin.as_str(), first.size), (NEW_ORIGIN, 2));
    run_job(&s, &evaluator, &model).await?;
    let next = seen.checkpoint(&s).await?;
    assert_eq!((next.origin.as_str(), next.size), (NEW_ORIGIN, 4));
    s.stop().await;
    assert_eq!(seen.0.len(), 4, "two heads per key, none signed twice");
    db.cleanup().await
}

fn key_of(data: &Path) -> anyhow::Result<VerifyingKey> {
    let text = std::fs::read_to_string(data.join(proctor_server::state::SERVICE_KEY_FILE))?;
    Ok(proctor_attest::SigningKey::from_pkcs8_pem(&text)?.verifying_key())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_log_replaced_under_a_running_server_gets_503_log_fork_and_nothing_signed()
-> anyhow::Result<()> {
    for db in TestDb::all().await? {
        replaced_while_running(&db)
            .await
            .map_err(|e| e.context(format!("on {}", db.label)))?;
        db.cleanup().await?;
    }
    Ok(())
}

async fn replaced_while_running(db: &TestDb) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut seen = Seen::default();
    let s = start(db, data.path(), "proctor.local/log").await?;
    let (evaluator, model) = parties(&s).await?;
    let first = run_job(&s, &evaluator, &model).await?;
    snapshot_log(db, "at_two").await?;
    run_job(&s, &evaluator, &model).await?;
    snapshot_log(db, "at_four").await?;
    let signed = seen.checkpoint(&s).await?;
    assert_eq!(signed.size, 4);
    let (_, before) = s
        .call_raw("GET", "/v1/log/checkpoint", None, Body::None)
        .await?;

    restore_log(db, "at_two").await?;
    let (status, body) = s
        .call("GET", "/v1/log/checkpoint", None, Body::None)
        .await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "log_fork"),
        "{body}"
    );
    let (status, body) = s
        .call(
            "GET",
            &format!("/v1/attestations/{first}"),
            None,
            Body::None,
        )
        .await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "log_fork"),
        "{body}"
    );
    let jobs = count(db, "SELECT COUNT(*) FROM jobs").await?;
    let (status, body) = s.submit_arith(&evaluator, &model).await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "log_fork"),
        "{body}"
    );
    // Nothing half-written: no job, no entry; the remembered head did not move.
    assert_eq!(count(db, "SELECT COUNT(*) FROM jobs").await?, jobs);
    assert_eq!(count(db, "SELECT size FROM log_head").await?, 2);
    assert_eq!(count(db, "SELECT COUNT(*) FROM log_entries").await?, 2);
    assert_eq!(head_on_disk(data.path())?, signed);

    // Putting the right log back is a recovery too: the same checkpoint, byte for byte.
    restore_log(db, "at_four").await?;
    let (status, after) = s
        .call_raw("GET", "/v1/log/checkpoint", None, Body::None)
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after, before);
    run_job(&s, &evaluator, &model).await?;
    assert_eq!(seen.checkpoint(&s).await?.size, 6);
    s.stop().await;
    Ok(())
}
