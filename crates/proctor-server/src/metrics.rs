//! Prometheus metrics, served at `/metrics` in the text exposition format.
//!
//! Counters are per process: with several replicas, Prometheus sums them.

use prometheus::{Encoder, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Jobs by the status they reached here: `queued` when submitted, then the final status.
    pub jobs: IntCounterVec,
    /// Samples processed by this process's workers.
    pub samples: IntCounter,
    /// HTTP requests by method, matched route template and status class (closed sets).
    pub http_requests: IntCounterVec,
}

impl Metrics {
    /// Registers every metric.
    ///
    /// # Errors
    ///
    /// Only on a programming error (a duplicate or malformed metric name).
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let jobs = IntCounterVec::new(
            Opts::new("proctor_jobs_total", "Jobs by status reached"),
            &["status"],
        )?;
        let samples = IntCounter::new(
            "proctor_samples_processed_total",
            "Samples processed by this process's workers",
        )?;
        let http_requests = IntCounterVec::new(
            Opts::new("proctor_http_requests_total", "HTTP requests"),
            &["method", "route", "status"],
        )?;
        registry.register(Box::new(jobs.clone()))?;
        registry.register(Box::new(samples.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        Ok(Metrics {
            registry,
            jobs,
            samples,
            http_requests,
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics; an empty page is the
        // worst case.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
