//! Beginning a new log on purpose (`proctor log rotate`): the recovery from a refused fork
//! ([`crate::log_guard`]), or a routine key rotation.
//!
//! The service key is retired, not destroyed: it moves to `retired/<key-id>.pem` beside its
//! public key, the last checkpoint it signed, and a rotation note it signs naming its
//! successor, so attestations signed before stay verifiable and a reader can follow the chain.
//! A new key is made, and the remembered head starts afresh at the database's current head
//! under a new origin. No key ever signs two different heads for one size: the old key's
//! checkpoints end where they ended, and the new key signs only under the new origin.
//!
//! Why the old log gets no final entry: after a restore the database no longer holds the
//! entries past its size nor their subtree hashes, and the head file keeps only the root, so
//! nothing can be appended to the old tree that a checkpoint of it would prove. The signed
//! rotation note stands in for that entry.
//!
//! Every server of the data directory must be stopped while it runs: a running one would go on
//! signing with the retired key.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use proctor_attest::{Checkpoint, SigningKey, TreeHead, note};
use proctor_store::Store;

use crate::log_guard::{LOG_HEAD_FILE, signed_head, write_head};
use crate::startup::{StartError, load_service_key, write_secret};
use crate::state::SERVICE_KEY_FILE;

/// Where retired keys, their last checkpoints and rotation notes are kept, in the data
/// directory.
pub const RETIRED_DIR: &str = "retired";

/// Why a rotation was refused or failed; nothing was changed unless said.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The data directory has no service key to retire.
    #[error("{0} does not exist: there is no service key to retire")]
    NoKey(String),
    /// The new origin is the one the retired key signed.
    #[error(
        "the log `{0}` was signed by the current key already: a new log needs a new origin \
         (e.g. `{0}-2`)"
    )]
    SameOrigin(String),
    /// The new origin cannot name a checkpoint.
    #[error("{0}")]
    Origin(String),
    /// The key, a file or the database failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The head file failed.
    #[error(transparent)]
    Guard(#[from] crate::log_guard::GuardError),
    /// The database's log could not be read.
    #[error("database: {0}")]
    Store(#[from] proctor_store::StoreError),
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The retired key's id.
    pub retired_key: String,
    /// The last checkpoint the retired key signed (origin and head), when it had one.
    pub retired_head: Option<Checkpoint>,
    /// The new key's id.
    pub key: String,
    /// The new origin.
    pub origin: String,
    /// Where the new log starts: the database's head.
    pub head: TreeHead,
    /// The rotation note, signed by the retired key.
    pub note: PathBuf,
}

/// Retires the service key of `data_dir` and starts a new log under `origin` at the head of
/// the log in the database at `database_url`.
///
/// # Errors
///
/// [`RotateError`]; refused before anything changes when there is no key, `origin` is the
/// retired log's, or the database cannot be read.
pub async fn rotate(
    data_dir: &Path,
    database_url: &str,
    origin: &str,
) -> Result<Rotation, RotateError> {
    let key_path = data_dir.join(SERVICE_KEY_FILE);
    if !key_path.exists() {
        return Err(RotateError::NoKey(key_path.display().to_string()));
    }
    let old = load_service_key(&key_path)?;
    let head_path = data_dir.join(LOG_HEAD_FILE);
    let last = match std::fs::read(&head_path) {
        Ok(bytes) => Some(bytes),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(io(&head_path, source).into()),
    };
    // What it claims is enough here: the file is the retired key's own, kept as it is.
    let retired_head = last
        .as_deref()
        .and_then(|bytes| Checkpoint::parse_unverified(bytes).ok())
        .map(|(checkpoint, _)| checkpoint);
    if let Some(last) = &retired_head
        && last.origin == origin
    {
        return Err(RotateError::SameOrigin(origin.to_owned()));
    }
    let store = Store::connect(database_url).await?;
    let head = store.tree_head().await;
    store.close().await;
    let head = head?;
    let new = SigningKey::generate().map_err(|_| StartError::Random)?;
    let new_head = signed_head(origin, head, &new).map_err(RotateError::Origin)?;
    let (old_id, new_id) = (old.key_id(), new.key_id());
    let note_text = rotation_note(retired_head.as_ref(), &old_id, origin, &new_id, head);
    let signer_name = retired_head
        .as_ref()
        .map_or("proctor-log-rotation", |c| c.origin.as_str());
    let signed_note = note::sign(&note_text, signer_name, &old)
        .map_err(|e| RotateError::Origin(e.to_string()))?;

    let retired = data_dir.join(RETIRED_DIR);
    std::fs::create_dir_all(&retired).map_err(|e| io(&retired, e))?;
    let note_path = retired.join(format!("{old_id}.rotation"));
    write_secret(&note_path, signed_note.as_bytes())?;
    write_secret(
        &retired.join(format!("{old_id}.public.pem")),
        old.verifying_key().to_pem().as_bytes(),
    )?;
    if let Some(bytes) = &last {
        write_secret(&retired.join(format!("{old_id}.checkpoint")), bytes)?;
    }
    // From here the old key no longer serves: a rename keeps its 0600 mode.
    let retired_key = retired.join(format!("{old_id}.pem"));
    std::fs::rename(&key_path, &retired_key).map_err(|e| io(&retired_key, e))?;
    write_secret(&key_path, new.to_pkcs8_pem().as_bytes())?;
    // Replaces the old head whatever its size: the new log's head is the database's.
    std::fs::remove_file(&head_path)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        })
        .map_err(|e| io(&head_path, e))?;
    write_head(&head_path, head.size, &new_head)?;
    Ok(Rotation {
        retired_key: old_id,
        retired_head,
        key: new_id,
        origin: origin.to_owned(),
        head,
        note: note_path,
    })
}

/// The rotation note's text: which log and key end where, and which begin where.
fn rotation_note(
    last: Option<&Checkpoint>,
    old_key: &str,
    origin: &str,
    new_key: &str,
    head: TreeHead,
) -> String {
    let b64 = |hash: &[u8; 32]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(hash)
    };
    let mut text = String::from("proctor log rotation\n");
    match last {
        Some(last) => {
            let _ = writeln!(text, "retired origin {}", last.origin);
            let _ = writeln!(text, "retired key {old_key}");
            let _ = writeln!(text, "last signed {} {}", last.size, b64(&last.root));
        }
        None => {
            let _ = writeln!(text, "retired key {old_key}");
        }
    }
    let _ = writeln!(text, "successor origin {origin}");
    let _ = writeln!(text, "successor key {new_key}");
    let _ = writeln!(
        text,
        "successor starts at {} {}",
        head.size,
        b64(&head.root)
    );
    text
}

fn io(path: &Path, source: std::io::Error) -> StartError {
    StartError::Io {
        path: path.display().to_string(),
        source,
    }
}
