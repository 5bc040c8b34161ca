//! Witnessing as a client (c2sp.org/tlog-witness v1.0.0): after appends, the service sends
//! each configured witness `add-checkpoint` with its new checkpoint and a consistency proof
//! from the size that witness last cosigned, verifies the cosignature that comes back, stores
//! it, and serves the checkpoint with its witnesses' cosignature lines appended
//! ([`cosigned_checkpoint`]).
//!
//! One task per witness, so a slow or dead witness delays nobody: each wakes every
//! [`Witnessing::interval`], takes the head the log guard vouches for (the only head the
//! service signs), and brings its witness up to it. A 409 names the size the witness holds:
//! the task records it and sends again from there at once. A network failure, a timeout or a
//! refusal backs off (doubling up to [`Witnessing::max_backoff`]) and is logged; nothing of it
//! reaches appends or jobs, which never wait for a witness.
//!
//! A witness that answers with a size larger than the log's, or refuses the log's own
//! checkpoint for its size (it holds another root there), has seen another tree under this
//! log's origin: a fork, logged as an error every time.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use proctor_attest::note::SignedNote;
use proctor_attest::{Checkpoint, SignatureType, TreeHead, Vkey, cosignature};
use proctor_sandbox::CancellationToken;
use proctor_store::cosignatures::Cosignature;
use tokio::task::JoinHandle;

use crate::error::{ApiError, ApiResult};
use crate::state::App;

/// The tlog-witness 409 body's content type.
const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// Sizes looked at, largest first, for one that a quorum of the configured witnesses cosigned.
const QUORUM_CANDIDATES: u32 = 16;

/// Resends after 409s in one round before the task waits: each 409 names a size the witness
/// holds, so a second one in a row means it moved meanwhile (another server of this log).
const CONFLICT_RESENDS: usize = 3;

/// One witness: the name the operator gave it, its cosigner key, where to reach it.
#[derive(Debug, Clone)]
pub struct WitnessEndpoint {
    /// The operator's name for it (in logs).
    pub name: String,
    /// Its cosigner verifier key (`name+keyid+base64(0x04 || key)`).
    pub key: Vkey,
    /// Its submission prefix: `add-checkpoint` is appended.
    pub url: String,
}

/// Why a `--witness` value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not `NAME=VKEY@URL`.
    #[error(
        "a witness is NAME=VKEY@URL (e.g. w1=witness.example/w1+1234abcd+BASE64@https://witness.example/)"
    )]
    Shape,
    /// The vkey is not a cosigner key.
    #[error("the witness's vkey: {0}")]
    Vkey(String),
    /// The URL is not http(s).
    #[error("the witness's URL must start with http:// or https://")]
    Url,
}

impl FromStr for WitnessEndpoint {
    type Err = EndpointError;

    fn from_str(text: &str) -> Result<WitnessEndpoint, EndpointError> {
        let (name, rest) = text.split_once('=').ok_or(EndpointError::Shape)?;
        // A vkey holds no `@` (a name has no spaces, base64 no `@`); a URL may.
        let (vkey, url) = rest.split_once('@').ok_or(EndpointError::Shape)?;
        if name.is_empty() || vkey.is_empty() {
            return Err(EndpointError::Shape);
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(EndpointError::Url);
        }
        let key = Vkey::parse(vkey).map_err(|e| EndpointError::Vkey(e.to_string()))?;
        if key.signature_type() != SignatureType::CosignatureV1 {
            return Err(EndpointError::Vkey(
                "a log's key (type 0x01), not a witness's cosignature key (0x04)".into(),
            ));
        }
        Ok(WitnessEndpoint {
            name: name.to_owned(),
            key,
            url: url.to_owned(),
        })
    }
}

impl WitnessEndpoint {
    fn add_checkpoint_url(&self) -> String {
        format!("{}/add-checkpoint", self.url.trim_end_matches('/'))
    }
}

/// The witnesses, the quorum and the timing.
#[derive(Debug, Clone)]
pub struct Witnessing {
    /// The witnesses asked to cosign.
    pub witnesses: Vec<WitnessEndpoint>,
    /// How many of them must cosign a checkpoint before it is served as cosigned.
    pub quorum: usize,
    /// How often each witness's task looks for a new head.
    pub interval: Duration,
    /// How long one request to a witness may take.
    pub timeout: Duration,
    /// The longest wait after failures.
    pub max_backoff: Duration,
}

impl Default for Witnessing {
    fn default() -> Witnessing {
        Witnessing {
            witnesses: Vec::new(),
            quorum: 0,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Why the witnessing configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessingError {
    /// The quorum is more than the witnesses.
    #[error("a witness quorum of {quorum} needs at least {quorum} witnesses; {witnesses} given")]
    Quorum {
        /// The quorum.
        quorum: usize,
        /// The witnesses configured.
        witnesses: usize,
    },
    /// Two witnesses with one key.
    #[error("the witness key {0} is configured twice")]
    Duplicate(String),
}

impl Witnessing {
    /// Checks the quorum against the witnesses.
    ///
    /// # Errors
    ///
    /// [`WitnessingError`].
    pub fn check(&self) -> Result<(), WitnessingError> {
        if self.quorum > self.witnesses.len() {
            return Err(WitnessingError::Quorum {
                quorum: self.quorum,
                witnesses: self.witnesses.len(),
            });
        }
        for (i, w) in self.witnesses.iter().enumerate() {
            if self.witnesses[..i].iter().any(|o| o.key == w.key) {
                return Err(WitnessingError::Duplicate(w.key.to_string()));
            }
        }
        Ok(())
    }
}

/// Starts one task per configured witness; they stop when `shutdown` is cancelled.
pub fn spawn(app: &Arc<App>, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
    let witnessing = &app.config.witnessing;
    if witnessing.witnesses.is_empty() {
        return Vec::new();
    }
    let client = match reqwest::Client::builder()
        .timeout(witnessing.timeout)
        .connect_timeout(witnessing.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(%err, "no HTTP client for the witnesses: the log is not witnessed");
            return Vec::new();
        }
    };
    (0..witnessing.witnesses.len())
        .map(|i| tokio::spawn(run(app.clone(), client.clone(), i, shutdown.clone())))
        .collect()
}

/// What one submission came to.
enum Outcome {
    /// The witness is at the head (cosigned now, or before).
    Current,
    /// The witness holds another size; send again from it.
    Resend,
    /// Something failed; wait longer before the next try.
    Failed,
}

async fn run(app: Arc<App>, client: reqwest::Client, index: usize, shutdown: CancellationToken) {
    let witnessing = &app.config.witnessing;
    let witness = &witnessing.witnesses[index];
    let mut backoff = witnessing.interval;
    let mut delay = Duration::ZERO;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        let mut outcome = round(&app, &client, witness).await;
        for _ in 0..CONFLICT_RESENDS {
            if !matches!(outcome, Outcome::Resend) {
                break;
            }
            outcome = round(&app, &client, witness).await;
        }
        delay = match outcome {
            Outcome::Current => {
                backoff = witnessing.interval;
                witnessing.interval
            }
            Outcome::Resend | Outcome::Failed => {
                let wait = backoff;
                backoff = (backoff * 2).min(witnessing.max_backoff);
                wait
            }
        };
    }
}

/// Brings `witness` up to the vouched head, once.
async fn round(app: &App, client: &reqwest::Client, witness: &WitnessEndpoint) -> Outcome {
    let name = witness.name.as_str();
    let head = match app.log_guard.vouch(&app.store, &app.key).await {
        Ok(head) => head,
        // The guard logged the fork; nothing is signed.
        Err(_) => return Outcome::Failed,
    };
    let vkey = witness.key.to_string();
    let old = match app.store.witness_size(&vkey).await {
        Ok(size) => size.unwrap_or(0),
        Err(err) => {
            tracing::warn!(witness = name, %err, "reading the witness's size");
            return Outcome::Failed;
        }
    };
    if head.size == 0 {
        return Outcome::Current;
    }
    if old == head.size {
        // The witness holds this size; whether with this root, only a cosignature says (a
        // 409 names a size, not a root).
        match app.store.has_cosignature(&vkey, head.size).await {
            Ok(true) => return Outcome::Current,
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(witness = name, %err, "reading the witness's cosignatures");
                return Outcome::Failed;
            }
        }
    }
    if old > head.size {
        tracing::error!(
            witness = name,
            witness_size = old,
            log_size = head.size,
            "the witness cosigned a larger tree than this log holds: another log under this \
             origin, or a fork"
        );
        return Outcome::Failed;
    }
    let (body, note) = match request(app, old, head).await {
        Ok(request) => request,
        Err(err) => {
            tracing::error!(witness = name, %err, "building an add-checkpoint request");
            return Outcome::Failed;
        }
    };
    let response = match client
        .post(witness.add_checkpoint_url())
        .body(body)
        .send()
        .await
    {
        Ok(response) => response,
        Err(err) => {
            tracing::warn!(witness = name, %err, "the witness could not be reached");
            return Outcome::Failed;
        }
    };
    let status = response.status().as_u16();
    let is_size = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(SIZE_CONTENT_TYPE));
    // A witness's answer is a line or a size: a few KiB at most.
    let text = match response.text().await {
        Ok(text) if text.len() <= 64 << 10 => text,
        Ok(_) => {
            tracing::warn!(witness = name, status, "the witness's answer is too long");
            return Outcome::Failed;
        }
        Err(err) => {
            tracing::warn!(witness = name, status, %err, "reading the witness's answer");
            return Outcome::Failed;
        }
    };
    match status {
        200 => accept(app, witness, &note, head, &text).await,
        409 if is_size => conflict(app, witness, old, head, &text).await,
        _ => {
            tracing::warn!(
                witness = name,
                status,
                old,
                size = head.size,
                answer = %text.chars().take(200).collect::<String>(),
                "the witness refused the checkpoint"
            );
            Outcome::Failed
        }
    }
}

/// The request body from `old` to `head`, and the signed checkpoint in it.
async fn request(app: &App, old: u64, head: TreeHead) -> Result<(String, String), String> {
    let note = Checkpoint::new(&app.config.origin, head)
        .sign(&app.key)
        .map_err(|e| e.to_string())?;
    let proof = if old == 0 {
        Vec::new()
    } else {
        app.store
            .consistency_proof(old, head.size)
            .await
            .map_err(|e| e.to_string())?
    };
    let mut body = format!("old {old}\n");
    for hash in &proof {
        body.push_str(&b64(hash));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(&note);
    Ok((body, note))
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A 200: keeps the witness's cosignature of `note` (the checkpoint of `head`), once it
/// verifies.
async fn accept(
    app: &App,
    witness: &WitnessEndpoint,
    note: &str,
    head: TreeHead,
    answer: &str,
) -> Outcome {
    let name = witness.name.as_str();
    // As the spec suggests: the answer appended to the checkpoint is a signed note, and the
    // witness's lines on it are what counts; lines by other keys are ignored.
    let verified = SignedNote::parse(&format!("{note}{answer}"))
        .map_err(|e| e.to_string())
        .and_then(|cosigned| {
            let timestamp =
                cosignature::verify_note(&cosigned, &witness.key).map_err(|e| e.to_string())?;
            let line = cosigned
                .signatures
                .iter()
                .rev()
                .find(|s| s.name == witness.key.name() && s.key_id == witness.key.key_id())
                .map(|s| s.line().trim_end_matches('\n').to_owned())
                .ok_or_else(|| "no line".to_owned())?;
            Ok((line, timestamp))
        });
    let (line, cosigned_at) = match verified {
        Ok(verified) => verified,
        Err(err) => {
            tracing::warn!(
                witness = name,
                size = head.size,
                %err,
                "the witness answered 200 without a cosignature that verifies"
            );
            return Outcome::Failed;
        }
    };
    let cosignature = Cosignature {
        witness: witness.key.to_string(),
        size: head.size,
        root: head.root,
        line,
        cosigned_at,
    };
    match app.store.add_cosignature(&cosignature).await {
        Ok(()) => {
            tracing::info!(witness = name, size = head.size, "cosigned");
            Outcome::Current
        }
        Err(err) => {
            tracing::warn!(witness = name, %err, "storing a cosignature");
            Outcome::Failed
        }
    }
}

/// A 409: the witness holds another size than the one sent.
async fn conflict(
    app: &App,
    witness: &WitnessEndpoint,
    old: u64,
    head: TreeHead,
    answer: &str,
) -> Outcome {
    let name = witness.name.as_str();
    let Some(held) = answer
        .strip_suffix('\n')
        .and_then(|s| s.parse::<u64>().ok())
    else {
        tracing::warn!(witness = name, "a 409 without a size");
        return Outcome::Failed;
    };
    if held > head.size || held == old {
        tracing::error!(
            witness = name,
            witness_size = held,
            log_size = head.size,
            "the witness holds another tree of this log: a fork of it was shown to the witness"
        );
        return Outcome::Failed;
    }
    match app
        .store
        .set_witness_size(&witness.key.to_string(), held)
        .await
    {
        Ok(()) => Outcome::Resend,
        Err(err) => {
            tracing::warn!(witness = name, %err, "recording the witness's size");
            Outcome::Failed
        }
    }
}

/// The checkpoint to serve as cosigned: the largest size that at least the quorum of the
/// configured witnesses cosigned, signed by the service, with every configured witness's
/// cosignature of it appended. With no quorum configured, the current checkpoint. `None`
/// while no size has the quorum.
///
/// # Errors
///
/// [`ApiError`]: a fork (503 `log_fork`), the store, signing.
pub async fn cosigned_checkpoint(app: &App) -> ApiResult<Option<(TreeHead, String)>> {
    let head = app.log_guard.vouch(&app.store, &app.key).await?;
    if app.config.witnessing.quorum == 0 {
        return Ok(Some((head, sign(app, head)?)));
    }
    quorum_checkpoint(app, head).await
}

/// The checkpoint the service hands out ([`crate::routes::public`]): the cosigned one when
/// it holds at least `min_size` entries, else (no quorum yet, or an entry newer than it) the
/// current one, signed now. With no quorum configured, always the current one.
///
/// # Errors
///
/// As [`cosigned_checkpoint`].
pub async fn served_checkpoint(app: &App, min_size: u64) -> ApiResult<(TreeHead, String)> {
    let signed = app.reads.head(app).await?;
    if app.config.witnessing.quorum > 0
        && let Some((cosigned, note)) = quorum_checkpoint(app, signed.head).await?
        && cosigned.size >= min_size
    {
        return Ok((cosigned, note));
    }
    Ok((signed.head, signed.checkpoint.to_string()))
}

fn sign(app: &App, head: TreeHead) -> ApiResult<String> {
    Checkpoint::new(&app.config.origin, head)
        .sign(&app.key)
        .map_err(|e| ApiError::internal("signing a checkpoint", &e))
}

/// The largest size at most `head`'s that the quorum cosigned, with its cosignatures.
async fn quorum_checkpoint(app: &App, head: TreeHead) -> ApiResult<Option<(TreeHead, String)>> {
    let witnessing = &app.config.witnessing;
    let sizes = app
        .store
        .cosigned_sizes(witnessing.quorum, QUORUM_CANDIDATES)
        .await?;
    for size in sizes.into_iter().filter(|s| s.size <= head.size) {
        let root = app.store.root_at(size.size).await?;
        let lines: Vec<&str> = witnessing
            .witnesses
            .iter()
            .filter_map(|w| {
                let vkey = w.key.to_string();
                size.cosignatures
                    .iter()
                    .find(|c| c.witness == vkey && c.root == root)
                    .map(|c| c.line.as_str())
            })
            .collect();
        if lines.len() >= witnessing.quorum {
            let cosigned = TreeHead {
                size: size.size,
                root,
            };
            let mut note = sign(app, cosigned)?;
            for line in lines {
                note.push_str(line);
                note.push('\n');
            }
            return Ok(Some((cosigned, note)));
        }
    }
    Ok(None)
}
