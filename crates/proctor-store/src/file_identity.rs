//! The identity of the SQLite file a store opened, so that a file that vanished from its path
//! or was replaced there is noticed.
//!
//! SQLite keeps reading and writing the file it opened whatever happens at its path: deleted,
//! it lives on unlinked until the last connection closes, and everything written since is lost;
//! replaced (a restored backup copied over it, a new file created by another process), the open
//! connections go on with the old file while every connection opened later gets the new one.
//! Neither shows as an error anywhere. So the store records the file's identity when it
//! connects (device and inode on unix), and [`Store::probe`](crate::Store::probe) compares the
//! file now at the path with it.

use std::fs::Metadata;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::Fault;

/// The file a SQLite store opened: its path and what it was when the store connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DatabaseFile {
    path: PathBuf,
    identity: Identity,
}

/// What tells one file from another at the same path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    device: u64,
    inode: u64,
}

impl Identity {
    #[cfg(unix)]
    fn of(meta: &Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity {
            device: meta.dev(),
            inode: meta.ino(),
        }
    }

    /// Without inodes, the creation time (in nanoseconds) stands in: a file put at the path
    /// later was created later.
    #[cfg(not(unix))]
    fn of(meta: &Metadata) -> Identity {
        let created = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        Identity {
            device: 0,
            inode: created,
        }
    }
}

impl DatabaseFile {
    /// Records the file now at `path` (made absolute, so a later change of the working
    /// directory does not move it). `metadata` follows symbolic links, as SQLite does when it
    /// opens the file.
    pub(crate) fn at(path: &Path) -> std::io::Result<DatabaseFile> {
        let path = std::path::absolute(path)?;
        let identity = Identity::of(&std::fs::metadata(&path)?);
        Ok(DatabaseFile { path, identity })
    }

    /// Whether the file at the path is still the one recorded.
    ///
    /// # Errors
    ///
    /// [`Fault::FileMissing`], [`Fault::FileReplaced`], [`Fault::FileUnreadable`].
    pub(crate) fn check(&self) -> Result<(), Fault> {
        let shown = || self.path.display().to_string();
        match std::fs::metadata(&self.path) {
            Ok(meta) if Identity::of(&meta) == self.identity => Ok(()),
            Ok(_) => Err(Fault::FileReplaced(shown())),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Fault::FileMissing(shown())),
            Err(e) => Err(Fault::FileUnreadable {
                path: shown(),
                error: e.to_string(),
            }),
        }
    }
}
