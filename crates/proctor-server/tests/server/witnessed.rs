//! Witnessing as a client: after appends the service asks each configured witness to cosign
//! its new checkpoint (two in-process `proctor-witness` witnesses and one that is down), serves
//! the checkpoint with a quorum of cosignatures, resends from the size a 409 names, and never
//! lets a dead witness hold up a job.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proctor_attest::note::SignedNote;
use proctor_attest::{Checkpoint, SigningKey, VerifyingKey, Vkey, cosignature};
use proctor_server::state::SERVICE_KEY_FILE;
use proctor_server::witnessing::{WitnessEndpoint, Witnessing};
use proctor_witness::{KnownLogs, LogKey, Witness, WitnessStore};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{AnyConnection, Connection, Executor};

use crate::common::{Body, TestDb, TestServer, str_of};

const ORIGIN: &str = "proctor.local/log";

/// A witness on a loopback port, serving until the test ends.
struct InProcessWitness {
    url: String,
    key: SigningKey,
    name: String,
    _dir: tempfile::TempDir,
}

impl InProcessWitness {
    async fn start(name: &str, seed: u8, log: &VerifyingKey) -> anyhow::Result<InProcessWitness> {
        let dir = tempfile::tempdir()?;
        let mut logs = KnownLogs::new();
        logs.add(
            ORIGIN,
            LogKey {
                name: ORIGIN.into(),
                key: *log,
            },
        );
        let key = SigningKey::from_seed(&[seed; 32]);
        let store = WitnessStore::open(&dir.path().join("witness.db")).await?;
        let witness = Witness::new(name.into(), SigningKey::from_seed(&[seed; 32]), logs, store)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, proctor_witness::http::router(Arc::new(witness))).await;
        });
        Ok(InProcessWitness {
            url,
            key,
            name: name.into(),
            _dir: dir,
        })
    }

    fn vkey(&self) -> anyhow::Result<Vkey> {
        Ok(cosignature::vkey(&self.name, &self.key.verifying_key())?)
    }

    fn endpoint(&self) -> anyhow::Result<WitnessEndpoint> {
        Ok(format!("{}={}@{}", self.name, self.vkey()?, self.url).parse()?)
    }
}

/// A data directory holding a service key made here, so the witnesses can know it before the
/// service starts.
fn data_with_key(dir: &Path) -> anyhow::Result<VerifyingKey> {
    let key = SigningKey::generate()?;
    std::fs::write(dir.join(SERVICE_KEY_FILE), key.to_pkcs8_pem())?;
    Ok(key.verifying_key())
}

async fn run_job(s: &TestServer, evaluator: &str, model: &str) -> anyhow::Result<()> {
    let (status, job) = s.submit_arith(evaluator, model).await?;
    anyhow::ensure!(status == StatusCode::CREATED, "{status} {job}");
    let view = s
        .wait_ended(evaluator, &str_of(&job, "id")?, Duration::from_secs(60))
        .await?;
    anyhow::ensure!(view["status"] == "succeeded", "{view}");
    Ok(())
}

/// Waits until the cosigned checkpoint has `size` entries; returns it.
async fn cosigned_at(s: &TestServer, size: u64) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        let (status, bytes) = s
            .call_raw("GET", "/v1/log/checkpoint/cosigned", None, Body::None)
            .await?;
        let note = String::from_utf8(bytes)?;
        if status == StatusCode::OK && note.lines().nth(1) == Some(size.to_string().as_str()) {
            return Ok(note);
        }
        anyhow::ensure!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status} {note}"
        );
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "no cosigned checkpoint of {size}: {status} {note}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The witnesses among `witnesses` whose cosignature on `note` verifies.
fn cosigners(note: &str, witnesses: &[&InProcessWitness]) -> anyhow::Result<Vec<String>> {
    let note = SignedNote::parse(note)?;
    let mut names = Vec::new();
    for w in witnesses {
        if cosignature::verify_note(&note, &w.vkey()?).is_ok() {
            names.push(w.name.clone());
        }
    }
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_are_cosigned_by_a_quorum_while_a_dead_witness_holds_nothing_up() -> anyhow::Result<()>
{
    let db = TestDb::sqlite()?;
    let data = tempfile::tempdir()?;
    let log_key = data_with_key(data.path())?;
    let a = InProcessWitness::start("witness.example/a", 11, &log_key).await?;
    let b = InProcessWitness::start("witness.example/b", 12, &log_key).await?;
    // A witness whose port nobody listens on.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        drop(listener);
        let key = SigningKey::from_seed(&[13; 32]);
        let vkey = cosignature::vkey("witness.example/dead", &key.verifying_key())?;
        format!("dead={vkey}@http://127.0.0.1:{port}").parse::<WitnessEndpoint>()?
    };
    let endpoints = vec![a.endpoint()?, b.endpoint()?, dead];
    let s = TestServer::start_configured(&db, data.path(), 1, (Duration::from_secs(6), 3), |c| {
        c.witnessing = Witnessing {
            witnesses: endpoints,
            quorum: 2,
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
            max_backoff: Duration::from_millis(500),
        };
    })
    .await?;
    // Nothing is cosigned of an empty log.
    let (status, body) = s
        .call("GET", "/v1/log/checkpoint/cosigned", None, Body::None)
        .await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "not_witnessed");

    let (_, vendor) = s.account("acme", "vendor", None).await?;
    let (_, evaluator) = s.account("lab", "evaluator", Some("academic")).await?;
    let model = s.builtin_model(&vendor, "arith", "arith").await?;
    s.grant(&vendor, &model, json!({"tier": "academic"}), json!({}))
        .await?;
    let started = Instant::now();
    run_job(&s, &evaluator, &model).await?;
    run_job(&s, &evaluator, &model).await?;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the dead witness held the jobs up"
    );
    let note = cosigned_at(&s, 4).await?;
    Checkpoint::open(note.as_bytes(), &log_key)?;
    assert_eq!(
        cosigners(&note, &[&a, &b])?,
        [a.name.clone(), b.name.clone()]
    );

    // The service forgets where its witnesses are (as a copy of its database from before
    // would): it sends from 0, each witness answers 409 with its size, and it resends from
    // there.
    let mut conn = {
        sqlx::any::install_default_drivers();
        AnyConnection::connect(&db.url).await?
    };
    conn.execute("DELETE FROM witness_sizes").await?;
    conn.close().await?;
    run_job(&s, &evaluator, &model).await?;
    let note = cosigned_at(&s, 6).await?;
    assert_eq!(cosigners(&note, &[&a, &b])?.len(), 2, "{note}");
    s.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_quorum_larger_than_the_witnesses_stops_the_start() -> anyhow::Result<()> {
    let db = TestDb::sqlite()?;
    let data = tempfile::tempdir()?;
    let log_key = data_with_key(data.path())?;
    let a = InProcessWitness::start("witness.example/a", 11, &log_key).await?;
    let endpoint = a.endpoint()?;
    let started =
        TestServer::start_configured(&db, data.path(), 0, (Duration::from_secs(6), 3), |c| {
            c.witnessing.witnesses = vec![endpoint];
            c.witnessing.quorum = 2;
        })
        .await;
    let err = match started {
        Ok(s) => {
            s.stop().await;
            anyhow::bail!("the service started with a quorum of 2 and one witness");
        }
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("quorum of 2 needs at least 2 witnesses"),
        "{err}"
    );
    Ok(())
}
