//! A model wrapper that counts what a job consumed (queries, input and output tokens), so a
//! running job's usage can be written with its progress, and a job that fails or is cancelled
//! attests what the vendor was billed before it ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use proctor_core::{Completion, CompletionRequest, Model, ModelDescriptor, ModelError, Usage};

/// Running totals of one job's model calls.
#[derive(Debug, Default)]
pub struct UsageCounter {
    queries: AtomicU64,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
}

impl UsageCounter {
    /// The totals so far. Each field is read on its own, so a snapshot taken while calls
    /// complete may be one call behind in some field; the final snapshot, taken after the job
    /// loop returned, is exact.
    pub fn snapshot(&self) -> Usage {
        Usage {
            queries: self.queries.load(Ordering::Relaxed),
            input_tokens: self.input_tokens.load(Ordering::Relaxed),
            output_tokens: self.output_tokens.load(Ordering::Relaxed),
        }
    }
}

/// Counts every completed call of the model it wraps.
pub struct Metered {
    inner: Arc<dyn Model>,
    usage: Arc<UsageCounter>,
}

impl Metered {
    /// Wraps `inner`, counting into `usage`.
    pub fn new(inner: Arc<dyn Model>, usage: Arc<UsageCounter>) -> Metered {
        Metered { inner, usage }
    }
}

#[async_trait]
impl Model for Metered {
    fn descriptor(&self) -> ModelDescriptor {
        self.inner.descriptor()
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ModelError> {
        let completion = self.inner.complete(request).await?;
        // Only answered calls are billed; a failed call counts nothing, as the job loop's own
        // usage does.
        self.usage.queries.fetch_add(1, Ordering::Relaxed);
        self.usage
            .input_tokens
            .fetch_add(u64::from(completion.input_tokens), Ordering::Relaxed);
        self.usage
            .output_tokens
            .fetch_add(u64::from(completion.output_tokens), Ordering::Relaxed);
        Ok(completion)
    }
}
