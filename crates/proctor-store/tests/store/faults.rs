//! Store faults (issue 18): a transaction the database ended by itself, a full disk, a
//! database file deleted or replaced under a running store. None may wedge the pool, and the
//! health probe reports each while it lasts.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use proctor_store::{Fault, Store};
use sqlx::{Connection, Executor, PgConnection, SqliteConnection};

use crate::common::{Fixture, TestDb, sign};
use crate::on_every_backend;

/// Set to `1` where the tests may not mount a filesystem (not root): the full-disk test then
/// skips instead of failing.
const NO_MOUNT_ENV: &str = "PROCTOR_TEST_NO_MOUNT";

/// A policy name the test's trigger refuses.
const DOOMED: &str = "doomed";

/// Makes the database itself refuse a job named [`DOOMED`] while inserting it. On SQLite,
/// `RAISE(ROLLBACK)` ends the whole transaction inside the database, as SQLite does by itself
/// when a write fails with SQLITE_FULL: sqlx's own count of the transaction is left behind.
/// On PostgreSQL the error aborts the transaction without ending it.
async fn refuse_doomed_jobs(db: &TestDb) -> anyhow::Result<()> {
    if db.is_postgres() {
        let mut conn = PgConnection::connect(&db.url).await?;
        conn.execute(
            "CREATE FUNCTION refuse_doomed() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused by the database'; END $$",
        )
        .await?;
        conn.execute(
            format!(
                "CREATE TRIGGER refuse_doomed BEFORE INSERT ON jobs FOR EACH ROW \
                 WHEN (NEW.policy_name = '{DOOMED}') EXECUTE FUNCTION refuse_doomed()"
            )
            .as_str(),
        )
        .await?;
        conn.close().await?;
    } else {
        let mut conn = SqliteConnection::connect(&db.url).await?;
        conn.execute(
            format!(
                "CREATE TRIGGER refuse_doomed BEFORE INSERT ON jobs \
                 WHEN NEW.policy_name = '{DOOMED}' \
                 BEGIN SELECT RAISE(ROLLBACK, 'refused by the database'); END"
            )
            .as_str(),
        )
        .await?;
        conn.close().await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_transaction_the_database_ended_by_itself_leaves_no_wedged_connection()
-> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        refuse_doomed_jobs(&db).await?;
        let mut doomed = fx.job();
        doomed.policy_name = DOOMED.into();
        for _ in 0..3 {
            let refused = store.submit_job(&doomed, sign("accepted")).await;
            assert!(refused.is_err(), "{refused:?}");
        }
        // Every connection those went back on is handed out again below: one still counting
        // a transaction would fail its `BEGIN` with "begin_with at non-zero transaction depth".
        for i in 0..20 {
            store
                .submit_job(&fx.job(), sign("accepted"))
                .await
                .map_err(|e| anyhow::anyhow!("submit {i} after the refusals: {e}"))?;
        }
        let claimed = store.claim("w1", Duration::from_secs(60), 3).await?;
        assert!(claimed.is_some());
        store.probe().await?;
    })
}

#[tokio::test]
async fn a_deleted_database_file_is_reported_by_the_probe() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("proctor.db");
    let store = Store::connect(&format!("sqlite://{}?mode=rwc", path.display())).await?;
    store.probe().await?;
    std::fs::rename(&path, dir.path().join("moved.db"))?;
    // SQLite writes on into the file it opened, so the write alone would pass.
    let found = store.probe().await;
    assert!(matches!(found, Err(Fault::FileMissing(_))), "{found:?}");
    store.close().await;
    Ok(())
}

#[tokio::test]
async fn a_replaced_database_file_is_reported_by_the_probe() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("proctor.db");
    let store = Store::connect(&format!("sqlite://{}?mode=rwc", path.display())).await?;
    store.probe().await?;
    // A restored copy put in its place, as `cp backup.db proctor.db` through a rename does.
    let copy = dir.path().join("restored.db");
    std::fs::copy(&path, &copy)?;
    std::fs::rename(&copy, &path)?;
    let found = store.probe().await;
    assert!(matches!(found, Err(Fault::FileReplaced(_))), "{found:?}");
    store.close().await;
    Ok(())
}

#[tokio::test]
async fn health_reuses_a_probe_for_a_second_then_probes_again() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("proctor.db");
    let store = Store::connect(&format!("sqlite://{}?mode=rwc", path.display())).await?;
    store.health().await?;
    std::fs::remove_file(&path)?;
    store.health().await?;
    tokio::time::sleep(proctor_store::probe::PROBE_REUSE).await;
    let found = store.health().await;
    assert!(matches!(found, Err(Fault::FileMissing(_))), "{found:?}");
    store.close().await;
    Ok(())
}

/// A small tmpfs mounted on a temporary directory, unmounted when dropped (also when a test
/// fails half-way). `None` when mounting is not permitted and [`NO_MOUNT_ENV`] allows
/// skipping.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> anyhow::Result<Option<Tmpfs>> {
        let dir = tempfile::tempdir()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        let refusal = match out {
            Ok(out) if out.status.success() => return Ok(Some(Tmpfs { dir })),
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            Err(e) => e.to_string(),
        };
        let reason = format!(
            "this test mounts a small tmpfs to fill it and needs root (or CAP_SYS_ADMIN); \
             `mount -t tmpfs` failed: {refusal}"
        );
        if std::env::var(NO_MOUNT_ENV).is_ok_and(|v| v == "1") {
            eprintln!("skipped: {reason} ({NO_MOUNT_ENV}=1)");
            return Ok(None);
        }
        anyhow::bail!("{reason}; set {NO_MOUNT_ENV}=1 to skip it")
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a test that failed may still hold files open on it.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes `path` until the filesystem has no room left; returns the bytes written.
fn fill(path: &Path) -> anyhow::Result<u64> {
    let mut file = std::fs::File::create(path)?;
    let chunk = vec![0x5a_u8; 64 << 10];
    let mut written = 0_u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(written)
}

#[tokio::test]
async fn a_store_on_a_full_disk_refuses_writes_then_recovers_when_room_returns()
-> anyhow::Result<()> {
    let Some(disk) = Tmpfs::mount("16m")? else {
        return Ok(());
    };
    let url = format!(
        "sqlite://{}?mode=rwc",
        disk.path().join("proctor.db").display()
    );
    let store = Store::connect(&url).await?;
    let result = full_disk(&store, &disk.path().join("filler")).await;
    store.close().await;
    result
}

async fn full_disk(store: &Store, filler: &Path) -> anyhow::Result<()> {
    let fx = Fixture::new(store).await?;
    let (waiting, _) = store.submit_job(&fx.job(), sign("accepted")).await?;
    store.probe().await?;

    fill(filler)?;
    let refused = store.submit_job(&fx.job(), sign("accepted")).await;
    assert!(refused.is_err(), "a submit on a full disk: {refused:?}");
    let refused = store.claim("w1", Duration::from_secs(60), 3).await;
    assert!(refused.is_err(), "a claim on a full disk: {refused:?}");
    let found = store.probe().await;
    assert!(matches!(found, Err(Fault::WriteFailed(_))), "{found:?}");

    std::fs::remove_file(filler)?;
    // No restart: the same store, its same pool.
    let claimed = store
        .claim("w1", Duration::from_secs(60), 3)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the waiting job is claimable again"))?;
    assert_eq!(claimed.job.id, waiting.id);
    for i in 0..20 {
        store
            .submit_job(&fx.job(), sign("accepted"))
            .await
            .map_err(|e| anyhow::anyhow!("submit {i} once room returned: {e}"))?;
    }
    // The probe still reports the refused writes while they are recent, then passes.
    let found = store.probe().await;
    assert!(matches!(found, Err(Fault::WriteFailed(_))), "{found:?}");
    tokio::time::sleep(proctor_store::probe::STORAGE_FAULT_FRESH).await;
    store.probe().await?;
    Ok(())
}
