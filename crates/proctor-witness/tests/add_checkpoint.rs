//! The witness over its router, without a socket: what it cosigns, what it refuses and with
//! which status, the evidence it keeps of a split view, and that concurrent requests cannot
//! roll its state back.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use proctor_attest::log::{self as attest_log, TreeHead};
use proctor_attest::merkle::empty_root;
use proctor_attest::note::SignedNote;
use proctor_attest::{Checkpoint, MemoryStore, SigningKey, VerifyingKey, cosignature};
use proctor_witness::http::{MAX_BODY, SIZE_CONTENT_TYPE, router};
use proctor_witness::request::AddCheckpoint;
use proctor_witness::store::origin_hash;
use proctor_witness::{KnownLogs, LogKey, Witness, WitnessStore};
use tower::ServiceExt as _;

const ORIGIN: &str = "proctor.example/log";
const WITNESS: &str = "witness.example/w1";

/// A log in memory, signing its checkpoints with `key` under the origin's name.
struct Log {
    nodes: MemoryStore,
    key: SigningKey,
    origin: String,
}

impl Log {
    fn new(seed: u8) -> Log {
        Log {
            nodes: MemoryStore::new(),
            key: SigningKey::from_seed(&[seed; 32]),
            origin: ORIGIN.to_owned(),
        }
    }

    /// Appends `n` entries named by `tag` and their index.
    async fn append(&mut self, n: usize, tag: &str) {
        for _ in 0..n {
            let size = attest_log::tree_head(&mut self.nodes).await.unwrap().size;
            attest_log::append(&mut self.nodes, format!("{tag} {size}").as_bytes())
                .await
                .unwrap();
        }
    }

    async fn head(&mut self) -> TreeHead {
        attest_log::tree_head(&mut self.nodes).await.unwrap()
    }

    async fn checkpoint(&mut self) -> String {
        let head = self.head().await;
        Checkpoint::new(&self.origin, head).sign(&self.key).unwrap()
    }

    /// The add-checkpoint body from `old` to the current head.
    async fn request(&mut self, old: u64) -> String {
        let size = self.head().await.size;
        let proof = if old == 0 {
            Vec::new()
        } else {
            attest_log::consistency_proof(&mut self.nodes, old, size)
                .await
                .unwrap()
        };
        AddCheckpoint {
            old_size: old,
            proof,
            checkpoint: self.checkpoint().await,
        }
        .to_body()
    }

    fn log_key(&self) -> LogKey {
        LogKey {
            name: self.origin.clone(),
            key: self.key.verifying_key(),
        }
    }
}

/// A witness that knows `log`, on a database in `dir`.
async fn witness(log: &Log, dir: &std::path::Path) -> (Router, VerifyingKey) {
    let mut logs = KnownLogs::new();
    logs.add(ORIGIN, log.log_key());
    let key = SigningKey::from_seed(&[42; 32]);
    let public = key.verifying_key();
    let store = WitnessStore::open(&dir.join("witness.db")).await.unwrap();
    let witness = Witness::new(WITNESS.to_owned(), key, logs, store).unwrap();
    (router(Arc::new(witness)), public)
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

async fn call(router: &Router, method: &str, path: &str, body: impl Into<Body>) -> Answer {
    let response = router
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .body(body.into())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn add(router: &Router, body: impl Into<Body>) -> Answer {
    call(router, "POST", "/add-checkpoint", body).await
}

/// Checks that `answer` is one cosignature of the checkpoint `note` by the witness key.
fn assert_cosigns(answer: &Answer, note: &str, witness: &VerifyingKey) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body.matches('\n').count(),
        1,
        "one line: {:?}",
        answer.body
    );
    let cosigned = SignedNote::parse(&format!("{note}{}", answer.body)).unwrap();
    let vkey = cosignature::vkey(WITNESS, witness).unwrap();
    let timestamp = cosignature::verify_note(&cosigned, &vkey).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(timestamp.abs_diff(now) < 60, "{timestamp} vs {now}");
}

fn conflict(answer: &Answer, size: u64) {
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
    assert_eq!(answer.content_type, SIZE_CONTENT_TYPE);
    assert_eq!(answer.body, format!("{size}\n"));
}

#[tokio::test]
async fn a_growing_log_is_cosigned_at_each_size_from_the_size_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    let (w, key) = witness(&log, dir.path()).await;
    log.append(3, "a").await;
    let note = log.checkpoint().await;
    assert_cosigns(&add(&w, log.request(0).await).await, &note, &key);
    for more in [1, 4, 9] {
        let old = log.head().await.size;
        log.append(more, "a").await;
        let note = log.checkpoint().await;
        assert_cosigns(&add(&w, log.request(old).await).await, &note, &key);
    }
    // The same checkpoint again, from its own size: cosigned again (a client that lost the
    // answer).
    let size = log.head().await.size;
    let note = log.checkpoint().await;
    assert_cosigns(&add(&w, log.request(size).await).await, &note, &key);

    // The monitoring endpoint serves it with the log's signature and the cosignature.
    let got = call(
        &w,
        "GET",
        &format!("/{}/checkpoint", origin_hash(ORIGIN)),
        Body::empty(),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    let opened = Checkpoint::open(got.body.as_bytes(), &log.key.verifying_key()).unwrap();
    assert_eq!(opened.size, size);
    assert_eq!(got.body.matches('\u{2014}').count(), 2, "{}", got.body);
    let unknown = call(
        &w,
        "GET",
        &format!("/{}/checkpoint", origin_hash("other")),
        Body::empty(),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let not_hex = call(&w, "GET", "/..%2F/checkpoint", Body::empty()).await;
    assert_eq!(not_hex.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_old_size_other_than_the_cosigned_one_is_answered_409_with_that_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    let (w, _) = witness(&log, dir.path()).await;
    log.append(4, "a").await;
    // Nothing cosigned yet: the witness holds 0.
    conflict(&add(&w, log.request(2).await).await, 0);
    assert_eq!(add(&w, log.request(0).await).await.status, StatusCode::OK);
    log.append(4, "a").await;
    // A client that does not know the state, and one behind.
    conflict(&add(&w, log.request(0).await).await, 4);
    conflict(&add(&w, log.request(3).await).await, 4);
    assert_eq!(add(&w, log.request(4).await).await.status, StatusCode::OK);
    // A smaller, older checkpoint is never taken back.
    let mut behind = Log::new(1);
    behind.append(4, "a").await;
    conflict(&add(&w, behind.request(4).await).await, 8);
    conflict(&add(&w, behind.request(0).await).await, 8);
}

#[tokio::test]
async fn the_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    log.append(5, "a").await;
    {
        let (w, _) = witness(&log, dir.path()).await;
        assert_eq!(add(&w, log.request(0).await).await.status, StatusCode::OK);
    }
    let (w, _) = witness(&log, dir.path()).await;
    conflict(&add(&w, log.request(0).await).await, 5);
}

#[tokio::test]
async fn checkpoints_not_signed_by_the_logs_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    let (w, _) = witness(&log, dir.path()).await;
    log.append(2, "a").await;

    // Another origin: 404.
    let mut stranger = Log::new(1);
    stranger.origin = "elsewhere.example/log".into();
    stranger.append(2, "a").await;
    let answer = add(&w, stranger.request(0).await).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);

    // The right origin, another key under the origin's name: no trusted signature, 403.
    let mut impostor = Log::new(2);
    impostor.append(2, "a").await;
    let answer = add(&w, impostor.request(0).await).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert!(answer.body.contains("bad_signature"), "{}", answer.body);

    // The log's signature over another text: 403.
    let good = log.request(0).await;
    let tampered = good.replacen("\n2\n", "\n3\n", 1);
    assert_eq!(add(&w, tampered).await.status, StatusCode::FORBIDDEN);

    // The log's signature line with a flipped signature byte: 403.
    let at = good.rfind(' ').unwrap() + 10;
    let mut bytes = good.clone().into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let answer = add(&w, bytes).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);

    // A trusted signature beside unknown ones is fine: they are ignored.
    let other = SigningKey::from_seed(&[9; 32]);
    let text = &good[good.find("\n\n").unwrap() + 2..];
    let body_text = &text[..text.find("\n\n").unwrap() + 1];
    let foreign = proctor_attest::note::sign(body_text, "someone.example/x", &other).unwrap();
    let foreign_line = &foreign[body_text.len() + 1..];
    let with_foreign = format!("{good}{foreign_line}");
    assert_eq!(add(&w, with_foreign).await.status, StatusCode::OK);
}

#[tokio::test]
async fn proofs_that_do_not_verify_are_refused_with_422() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    let (w, _) = witness(&log, dir.path()).await;
    log.append(3, "a").await;
    assert_eq!(add(&w, log.request(0).await).await.status, StatusCode::OK);
    log.append(5, "a").await;
    let good = AddCheckpoint::parse(log.request(3).await.as_bytes()).unwrap();
    assert!(good.proof.len() >= 2);

    let mut flipped = good.clone();
    flipped.proof[0][0] ^= 1;
    let mut short = good.clone();
    short.proof.pop();
    let mut long = good.clone();
    long.proof.push([0; 32]);
    for bad in [flipped, short, long] {
        let answer = add(&w, bad.to_body()).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            answer.body
        );
    }
    // None of them moved the state.
    conflict(&add(&w, log.request(0).await).await, 3);
    assert_eq!(add(&w, good.to_body()).await.status, StatusCode::OK);

    // A proof with old size 0.
    let dir = tempfile::tempdir().unwrap();
    let (fresh, _) = witness(&log, dir.path()).await;
    let mut with_proof = good.clone();
    with_proof.old_size = 0;
    let answer = add(&fresh, with_proof.to_body()).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn sizes_out_of_order_and_an_empty_tree_with_a_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    let (w, _) = witness(&log, dir.path()).await;
    log.append(2, "a").await;
    let mut request = AddCheckpoint::parse(log.request(0).await.as_bytes()).unwrap();
    request.old_size = 3;
    assert_eq!(
        add(&w, request.to_body()).await.status,
        StatusCode::BAD_REQUEST
    );

    // Size 0: the empty tree's root is fine (and cosigned), another is 422.
    let empty = Checkpoint {
        origin: ORIGIN.into(),
        size: 0,
        root: empty_root(),
    };
    let body = AddCheckpoint {
        old_size: 0,
        proof: vec![],
        checkpoint: empty.sign(&log.key).unwrap(),
    }
    .to_body();
    assert_eq!(add(&w, body).await.status, StatusCode::OK);
    let rooted = Checkpoint {
        root: [1; 32],
        ..empty
    };
    let body = AddCheckpoint {
        old_size: 0,
        proof: vec![],
        checkpoint: rooted.sign(&log.key).unwrap(),
    }
    .to_body();
    assert_eq!(add(&w, body).await.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn garbage_and_oversized_bodies_are_refused_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    let (w, _) = witness(&log, dir.path()).await;
    log.append(2, "a").await;
    let good = log.request(0).await;
    let note_at = good.find("\n\n").unwrap() + 2;
    let bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\n\n".to_vec(),
        b"old 0\n\n".to_vec(),
        vec![0xff; 300],
        (0..=255u8).collect(),
        format!("old 0\n\n{}", &good[note_at..good.len() - 1]).into_bytes(),
        // The checkpoint without signature lines.
        format!(
            "old 0\n\n{}",
            &good[note_at..good.rfind("\n\n").unwrap() + 1]
        )
        .into_bytes(),
        // Extension lines.
        good.replacen(
            &format!("{ORIGIN}\n2\n"),
            &format!("{ORIGIN}\n2\nextra\n"),
            1,
        )
        .into_bytes(),
        good.replace('\n', "\r\n").into_bytes(),
        format!("old 0\n\n{ORIGIN}\n99999999999999999999\nAAAA\n\n\u{2014} x AAAAAAAA\n")
            .into_bytes(),
    ];
    for body in bodies {
        let answer = add(&w, body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{:?}: {}",
            String::from_utf8_lossy(&body),
            answer.body
        );
        assert!(answer.body.starts_with("{\"error\":"), "{}", answer.body);
    }
    let huge = format!("old 0\n{}\n\n", "A".repeat(MAX_BODY));
    assert_eq!(add(&w, huge).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    let get = call(&w, "GET", "/add-checkpoint", Body::empty()).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    // After all that the witness still works.
    assert_eq!(add(&w, good).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_fork_is_refused_and_both_checkpoints_are_kept_as_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    let (w, _) = witness(&log, dir.path()).await;
    log.append(3, "a").await;
    assert_eq!(add(&w, log.request(0).await).await.status, StatusCode::OK);
    // The fork shares the first three entries.
    let mut fork = Log::new(1);
    fork.append(3, "a").await;
    log.append(2, "a").await;
    fork.append(2, "b").await;
    let cosigned = log.checkpoint().await;
    assert_eq!(add(&w, log.request(3).await).await.status, StatusCode::OK);

    // The fork's checkpoint of the same size, from 3 (its proof verifies against 3 but the
    // witness holds 5) and from 5 (what a 409 tells it): refused both ways, kept once.
    let refused = fork.checkpoint().await;
    conflict(&add(&w, fork.request(3).await).await, 5);
    conflict(&add(&w, fork.request(5).await).await, 5);
    // The fork grows on and comes back with a proof from 5 in its own tree.
    fork.append(3, "b").await;
    let grown = fork.checkpoint().await;
    let answer = add(&w, fork.request(5).await).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    // Again: nothing more kept.
    add(&w, fork.request(5).await).await;

    let got = call(&w, "GET", "/evidence", Body::empty()).await;
    assert_eq!(got.status, StatusCode::OK);
    let list: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(list["witness"], WITNESS);
    let evidence = list["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 2, "{list:#}");
    let (proof, same_size) = (&evidence[0], &evidence[1]);
    assert_eq!(same_size["reason"], "same-size-other-root");
    assert_eq!(same_size["refused"], refused);
    assert_eq!(proof["reason"], "inconsistent-proof");
    assert_eq!(proof["refused"], grown);
    for e in evidence {
        assert_eq!(e["origin"], ORIGIN);
        // Both checkpoints verify under the log's key: the proof of the split view.
        let held = e["cosigned"].as_str().unwrap();
        assert!(
            held.starts_with(&cosigned[..cosigned.find("\n\n").unwrap()]),
            "{held}"
        );
        for note in [held, e["refused"].as_str().unwrap()] {
            Checkpoint::open(note.as_bytes(), &log.key.verifying_key()).unwrap();
        }
    }
    // And the log itself goes on being cosigned.
    log.append(1, "a").await;
    assert_eq!(add(&w, log.request(5).await).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_requests_from_one_state_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    let (w, _) = witness(&log, dir.path()).await;
    log.append(1, "a").await;
    assert_eq!(add(&w, log.request(0).await).await.status, StatusCode::OK);
    // Requests for sizes 2 to 24, each with a valid proof from 1, all at once.
    let mut bodies = Vec::new();
    for _ in 2..=24 {
        log.append(1, "a").await;
        bodies.push(log.request(1).await);
    }
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let w = w.clone();
            tokio::spawn(async move { add(&w, body).await })
        })
        .collect();
    let mut won = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let answer = task.await.unwrap();
        match answer.status {
            StatusCode::OK => won.push(i as u64 + 2),
            StatusCode::CONFLICT => {}
            other => panic!("{other}: {}", answer.body),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    // The state is the winner's size, whatever order they came in.
    let probe = log.request(0).await;
    conflict(&add(&w, probe).await, won[0]);
}
