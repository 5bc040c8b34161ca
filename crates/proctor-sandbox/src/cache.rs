//! The on-disk compile cache: compiling a component takes from 0.2 s (Rust) to 10 s (Python),
//! loading a cached artifact tens of milliseconds.
//!
//! A file is named by the sha256 of the component and of the engine's compatibility hash
//! (fuel, epochs and the target change the code), and starts with a header holding the sha256
//! of the artifact that follows. The header is checked before the unsafe deserialize; a
//! mismatch is recompiled and rewritten. Files are written to a temporary file and renamed, so
//! a crash never leaves half an artifact under a real name.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use proctor_component::ComponentError;
use proctor_core::Sha256Digest;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::SandboxError;

const MAGIC: &[u8] = b"proctor-cwasm-1\n";

/// Where compiled components are kept.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    /// A cache in `dir` (created when first written).
    pub fn in_dir(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache {
            dir: Some(dir.into()),
        }
    }

    /// No cache: every load compiles.
    pub fn disabled() -> CompileCache {
        CompileCache { dir: None }
    }

    /// `$PROCTOR_CACHE_DIR`, else `$XDG_CACHE_HOME/proctor`, else `~/.cache/proctor`.
    pub fn default_dir() -> Option<PathBuf> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env("PROCTOR_CACHE_DIR")
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("proctor")))
            .or_else(|| env("HOME").map(|d| d.join(".cache").join("proctor")))
    }

    /// The file a component's artifact lives in for this engine.
    pub fn path_for(&self, engine: &Engine, component: &Sha256Digest) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let mut hasher = Sha256Hasher(ring::digest::Context::new(&ring::digest::SHA256));
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = hex::encode(&hasher.0.finish().as_ref()[..16]);
        Some(dir.join(format!("{component}-{engine_hash}.cwasm")))
    }

    /// The compiled component: from the cache when a sound artifact is there, else compiled
    /// and stored.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &Sha256Digest,
        bytes: &[u8],
    ) -> Result<Component, SandboxError> {
        let Some(path) = self.path_for(engine, digest) else {
            return compile(engine, bytes);
        };
        if let Some(component) = load(engine, &path) {
            return Ok(component);
        }
        let component = compile(engine, bytes)?;
        if let Err(e) = store(&path, &component) {
            // A cache that cannot be written costs time, not correctness.
            tracing::warn!(path = %path.display(), error = %e, "could not write the compile cache");
        }
        Ok(component)
    }
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, SandboxError> {
    Component::new(engine, bytes).map_err(|e| ComponentError::Invalid(format!("{e:#}")).into())
}

fn load(engine: &Engine, path: &Path) -> Option<Component> {
    let data = std::fs::read(path).ok()?;
    let artifact = data.strip_prefix(MAGIC)?;
    let (expected, artifact) = artifact.split_at_checked(32)?;
    if Sha256Digest::of(artifact).0 != expected {
        tracing::warn!(path = %path.display(), "compile cache entry is corrupt; recompiling");
        return None;
    }
    // SAFETY: `deserialize` trusts its input to be an artifact this wasmtime wrote. The file is
    // one we wrote ourselves (named by the engine's compatibility hash), and the digest check
    // above proves its bytes are exactly what was written, so a torn or tampered file never
    // reaches it.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, artifact) };
    component
        .inspect_err(
            |e| tracing::warn!(path = %path.display(), error = %e, "unusable compile cache entry"),
        )
        .ok()
}

fn store(path: &Path, component: &Component) -> Result<(), SandboxError> {
    let err = |message: String| SandboxError::Cache {
        path: path.display().to_string(),
        message,
    };
    let dir = path
        .parent()
        .ok_or_else(|| err("no parent directory".into()))?;
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let artifact = component.serialize().map_err(|e| err(format!("{e:#}")))?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| err(e.to_string()))?;
    file.write_all(MAGIC)
        .and_then(|()| file.write_all(&Sha256Digest::of(&artifact).0))
        .and_then(|()| file.write_all(&artifact))
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| err(e.to_string()))?;
    file.persist(path).map_err(|e| err(e.error.to_string()))?;
    Ok(())
}

/// Feeds `Hash` output into sha256, so the engine hash is stable across processes
/// (`DefaultHasher` promises no such thing).
struct Sha256Hasher(ring::digest::Context);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let d = self.0.clone().finish();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d.as_ref()[..8]);
        u64::from_le_bytes(b)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
