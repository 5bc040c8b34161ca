//! `proctor examples --out DIR`: writes the embedded example evals and datasets.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use proctor_evals::examples;

#[derive(Args)]
pub struct ExamplesArgs {
    /// Directory to write into (created if needed).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: ExamplesArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let files: [(&str, &[u8]); 4] = [
        ("arith.wasm", examples::ARITH_WASM),
        ("arith.jsonl", examples::ARITH_JSONL.as_bytes()),
        ("knowledge.wasm", examples::KNOWLEDGE_WASM),
        ("knowledge.jsonl", examples::KNOWLEDGE_JSONL.as_bytes()),
    ];
    for (name, bytes) in files {
        write_atomically(&args.out.join(name), bytes)?;
        println!("{}", args.out.join(name).display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes through a temporary file in the same directory, so a reader never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    // These files are public (components, datasets, attestations): readable like any other.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
