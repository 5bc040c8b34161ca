//! The dev loop (`proctor run --dev`): what a sample wrote to stderr and how it trapped, shown
//! on the evaluator's own machine. The service never asks for it: a guest's output may carry
//! model text, and only host-computed aggregates may leave a service job.
//!
//! Capturing must not change what the guest sees: the captured stream accepts every write, as
//! the discarding one does, and keeps only the first [`DEV_STDERR_BYTES`] of it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use proctor_core::Outcome;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Bytes of a sample's stderr kept; the rest is counted and dropped.
pub const DEV_STDERR_BYTES: usize = 64 * 1024;

/// What the dev loop shows of one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevOutput {
    /// The sample's dataset index.
    pub index: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// The first [`DEV_STDERR_BYTES`] it wrote to stderr.
    pub stderr: Vec<u8>,
    /// Bytes written past those.
    pub dropped: u64,
    /// The trap, as wasmtime tells it (with the guest's backtrace when it has one).
    pub trap: Option<String>,
}

impl DevOutput {
    /// Whether there is anything to show.
    pub fn is_empty(&self) -> bool {
        self.stderr.is_empty() && self.trap.is_none()
    }
}

/// Receives each sample's [`DevOutput`] as the sample ends.
pub type DevSink = dyn Fn(DevOutput) + Send + Sync;

/// A guest's stderr, kept up to [`DEV_STDERR_BYTES`].
#[derive(Clone, Default)]
pub(crate) struct StderrCapture(Arc<Mutex<Captured>>);

#[derive(Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: u64,
}

impl StderrCapture {
    /// What was kept, and how many bytes were not.
    pub fn take(&self) -> (Vec<u8>, u64) {
        let mut c = self.lock();
        (std::mem::take(&mut c.kept), c.dropped)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        // Appending bytes cannot leave the buffer torn.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl IsTerminal for StderrCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrCapture {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for StderrCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut c = self.lock();
        let room = DEV_STDERR_BYTES.saturating_sub(c.kept.len());
        let keep = room.min(buf.len());
        c.kept.extend_from_slice(&buf[..keep]);
        c.dropped += (buf.len() - keep) as u64;
        // Every byte is accepted, as the discarding stream accepts it.
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn keeps_the_first_bytes_and_counts_the_rest() {
        let capture = StderrCapture::default();
        let mut w = capture.clone();
        w.write_all(&vec![b'a'; DEV_STDERR_BYTES - 3])
            .await
            .unwrap();
        w.write_all(b"bcdefg").await.unwrap();
        let (kept, dropped) = capture.take();
        assert_eq!(kept.len(), DEV_STDERR_BYTES);
        assert!(kept.ends_with(b"abcd"));
        assert_eq!(dropped, 3);
    }
}
