//! `proctor keys`: generate and show the service's signing keys.
//!
//! A key directory holds `private-key.pem` (PKCS#8, mode 0600) and `public-key.pem`
//! (SubjectPublicKeyInfo); the formats are in `proctor_attest::keys`. One key signs the
//! attestation envelopes and the log's checkpoints.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use proctor_attest::keys::PRIVATE_KEY_LABEL;
use proctor_attest::{Checkpoint, SignatureType, SigningKey, VerifyingKey, Vkey};
use proctor_server::log_guard::LOG_HEAD_FILE;
use proctor_server::state::{DEFAULT_ORIGIN, SERVICE_KEY_FILE};

/// The private key's file name in a key directory.
pub const PRIVATE_KEY_FILE: &str = "private-key.pem";
/// The public key's file name in a key directory (and in an attestation directory).
pub const PUBLIC_KEY_FILE: &str = "public-key.pem";

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate an Ed25519 key pair: DIR/private-key.pem (PKCS#8, mode 0600) and
    /// DIR/public-key.pem. Refuses if either file exists.
    Generate {
        /// The directory to write to; created if needed.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Print the public key (PEM), its key id, and the log's verifier key (the C2SP vkey a
    /// tlog-policy and tlog tools name the log by: `<origin>+<key id>+<base64 key>`).
    Show {
        /// A key directory, a service data directory (its service-key.pem), or a public or
        /// private key PEM file.
        #[arg(value_name = "DIR")]
        path: PathBuf,
        /// The log's origin (the vkey's name); default: the one a data directory's remembered
        /// head names, else `proctor serve`'s default.
        #[arg(long)]
        origin: Option<String>,
    },
}

pub fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Generate { out } => generate(&out),
        KeysCommand::Show { path, origin } => show(&path, origin),
    }
}

fn generate(dir: &Path) -> anyhow::Result<ExitCode> {
    let private = dir.join(PRIVATE_KEY_FILE);
    let public = dir.join(PUBLIC_KEY_FILE);
    for path in [&private, &public] {
        // symlink_metadata: a dangling link is still something we will not write through.
        if path.symlink_metadata().is_ok() {
            bail!(
                "{} exists; refusing to overwrite a key (move it away first)",
                path.display()
            );
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = SigningKey::generate()?;
    write_new(dir, &private, key.to_pkcs8_pem().as_bytes(), 0o600)?;
    if let Err(err) = write_new(dir, &public, key.verifying_key().to_pem().as_bytes(), 0o644) {
        // Half a key pair is worse than none: the next `generate` would refuse.
        let _ = fs::remove_file(&private);
        return Err(err);
    }
    println!("wrote {} (keep it secret)", private.display());
    println!("wrote {}", public.display());
    println!("key id: {}", key.key_id());
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to `path` atomically (a temporary file in the same directory, then a link
/// that fails if `path` exists), so a reader never sees half a key and a key written
/// concurrently is never replaced.
pub(crate) fn write_new(dir: &Path, path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".proctor-key-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // Set at creation, so the private key is never readable by others, not even briefly.
        builder.permissions(fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = builder
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    file.persist_noclobber(path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        // Make the new name durable too; failing here loses nothing already written.
        let _ = d.sync_all();
    }
    Ok(())
}

fn show(path: &Path, origin: Option<String>) -> anyhow::Result<ExitCode> {
    let key = load_public_key(path)?;
    let (origin, whence) = match origin {
        Some(origin) => (origin, ""),
        None => match remembered_origin(path) {
            Some(origin) => (origin, " (the origin of the data directory's log)"),
            None => (
                DEFAULT_ORIGIN.to_owned(),
                " (the default origin of `proctor serve`; pass --origin for another)",
            ),
        },
    };
    let vkey = Vkey::new(&origin, SignatureType::Ed25519, key)
        .with_context(|| format!("the origin {origin:?} cannot name a key"))?;
    print!("{}", key.to_pem());
    println!("key id: {}", key.key_id());
    println!("vkey: {vkey}{whence}");
    Ok(ExitCode::SUCCESS)
}

/// The origin a service data directory's remembered head names (the signature is checked by
/// the service, not here: this only picks the vkey's name).
fn remembered_origin(path: &Path) -> Option<String> {
    let text = fs::read(path.join(LOG_HEAD_FILE)).ok()?;
    Checkpoint::parse_unverified(&text)
        .ok()
        .map(|(checkpoint, _)| checkpoint.origin)
}

/// The public key in a key directory (its public key, else its private key's), or in a PEM
/// file holding either. A directory whose two files disagree is an error.
pub fn load_public_key(path: &Path) -> anyhow::Result<VerifyingKey> {
    if !path.is_dir() {
        return key_from_file(path);
    }
    let public = path.join(PUBLIC_KEY_FILE);
    let private = path.join(PRIVATE_KEY_FILE);
    let service = path.join(SERVICE_KEY_FILE);
    if !public.exists() && !private.exists() && service.exists() {
        return key_from_file(&service);
    }
    match (public.exists(), private.exists()) {
        (true, true) => {
            let from_public = key_from_file(&public)?;
            if key_from_file(&private)? != from_public {
                bail!(
                    "{} and {} are not a key pair",
                    public.display(),
                    private.display()
                );
            }
            Ok(from_public)
        }
        (true, false) => key_from_file(&public),
        (false, true) => key_from_file(&private),
        (false, false) => bail!(
            "{} holds neither {PUBLIC_KEY_FILE} nor {PRIVATE_KEY_FILE} (nor a service's {SERVICE_KEY_FILE})",
            path.display()
        ),
    }
}

fn key_from_file(path: &Path) -> anyhow::Result<VerifyingKey> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_private = text
        .lines()
        .any(|l| l.trim() == format!("-----BEGIN {PRIVATE_KEY_LABEL}-----"));
    let key = if is_private {
        SigningKey::from_pkcs8_pem(&text).map(|k| k.verifying_key())
    } else {
        VerifyingKey::from_pem(&text)
    };
    key.with_context(|| {
        format!(
            "{}: not an Ed25519 {} key",
            path.display(),
            if is_private { "private" } else { "public" }
        )
    })
}
