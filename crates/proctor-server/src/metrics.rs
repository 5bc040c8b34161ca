//! Prometheus metrics in the text exposition format: a public page at `/metrics` and the
//! operator's at `/v1/admin/metrics` (an admin's token; Prometheus sends it as a bearer).
//!
//! The public page holds only figures that do not depend on what models answered (requests,
//! jobs by status, samples counted at a job's end). Everything that moves with the models'
//! outputs or timing (model latency and errors, query rates through reservation blocks, budget
//! refusals, the queue's depth and wait) is a channel to whoever can read it, so it is on the
//! operator's page only. Counters are per process: with several replicas, Prometheus sums them.

use proctor_core::ModelError;
use proctor_store::StoreError;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Latency buckets (seconds) for model requests and waits: 1 ms to 2 minutes.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The server's metrics.
pub struct Metrics {
    public: Registry,
    operator: Registry,
    /// Jobs by the status they reached here: `queued` when submitted, then the final status.
    pub jobs: IntCounterVec,
    /// Samples processed by this process's workers, counted at each job's end.
    pub samples: IntCounter,
    /// HTTP requests by method, matched route template and status class (closed sets).
    pub http_requests: IntCounterVec,
    /// Operator: samples as they finish, for a live samples/s.
    pub samples_live: IntCounter,
    /// Operator: jobs queued (set when the page is read).
    pub queue_depth: IntGauge,
    /// Operator: how long a claim's transaction took.
    pub claim_seconds: Histogram,
    /// Operator: how long a job waited from its submission to its claim.
    pub queue_wait_seconds: Histogram,
    /// Operator: model requests by model id, as long as each took.
    pub model_seconds: HistogramVec,
    /// Operator: failed model requests by model id and kind (closed set).
    pub model_errors: IntCounterVec,
    meter: MeterMetrics,
}

/// What jobs' meters count ([`crate::meter`]), on the operator's page.
#[derive(Clone)]
pub struct MeterMetrics {
    /// Reservation blocks leased.
    pub blocks_leased: IntCounter,
    /// Batches that gave queries back to a grant or a hold (a block's rest, failed requests).
    pub block_returns: IntCounter,
    /// Queries refused by their grant, by why (closed set).
    pub refusals: IntCounterVec,
}

impl MeterMetrics {
    /// Counts a grant's refusal of a query (other errors are not refusals).
    pub fn note_refusal(&self, err: &StoreError) {
        let why = match err {
            StoreError::BudgetExhausted(budget) => budget.as_str(),
            StoreError::NoGrant(refusal) => refusal.as_str(),
            _ => return,
        };
        self.refusals.with_label_values(&[why]).inc();
    }
}

/// What one job's model requests count into, on the operator's page.
#[derive(Clone)]
pub struct ModelTiming {
    seconds: Histogram,
    errors: IntCounterVec,
    model: String,
}

impl ModelTiming {
    /// Counts a request that took `seconds` and ended `answer`.
    pub fn observe<T>(&self, seconds: f64, answer: &Result<T, ModelError>) {
        self.seconds.observe(seconds);
        if let Err(err) = answer {
            let kind = match err {
                ModelError::Unavailable(_) => "unavailable",
                ModelError::Rejected(_) => "rejected",
                ModelError::BudgetExhausted => "budget_exhausted",
                ModelError::ServiceFault(_) => "service_fault",
            };
            self.errors.with_label_values(&[&self.model, kind]).inc();
        }
    }
}

impl Metrics {
    /// Registers every metric.
    ///
    /// # Errors
    ///
    /// Only on a programming error (a duplicate or malformed metric name).
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let public = Registry::new();
        let operator = Registry::new();
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
        public.register(Box::new(jobs.clone()))?;
        public.register(Box::new(samples.clone()))?;
        public.register(Box::new(http_requests.clone()))?;
        let samples_live = IntCounter::new(
            "proctor_samples_run_total",
            "Samples finished by this process's workers, as they finish",
        )?;
        let queue_depth = IntGauge::new("proctor_queue_depth", "Jobs queued")?;
        let claim_seconds = Histogram::with_opts(
            HistogramOpts::new("proctor_claim_seconds", "Claim transactions")
                .buckets(SECONDS.into()),
        )?;
        let queue_wait_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "proctor_queue_wait_seconds",
                "From a job's submission to its claim",
            )
            .buckets(SECONDS.into()),
        )?;
        let model_seconds = HistogramVec::new(
            HistogramOpts::new("proctor_model_request_seconds", "Model requests by model")
                .buckets(SECONDS.into()),
            &["model"],
        )?;
        let model_errors = IntCounterVec::new(
            Opts::new("proctor_model_errors_total", "Failed model requests"),
            &["model", "kind"],
        )?;
        let meter = MeterMetrics {
            blocks_leased: IntCounter::new(
                "proctor_reservation_blocks_leased_total",
                "Reservation blocks leased from grants",
            )?,
            block_returns: IntCounter::new(
                "proctor_reservation_block_returns_total",
                "Batches that gave leased queries back",
            )?,
            refusals: IntCounterVec::new(
                Opts::new(
                    "proctor_budget_refusals_total",
                    "Queries refused by their grant",
                ),
                &["reason"],
            )?,
        };
        for collector in [
            Box::new(samples_live.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(queue_depth.clone()),
            Box::new(claim_seconds.clone()),
            Box::new(queue_wait_seconds.clone()),
            Box::new(model_seconds.clone()),
            Box::new(model_errors.clone()),
            Box::new(meter.blocks_leased.clone()),
            Box::new(meter.block_returns.clone()),
            Box::new(meter.refusals.clone()),
        ] {
            operator.register(collector)?;
        }
        Ok(Metrics {
            public,
            operator,
            jobs,
            samples,
            http_requests,
            samples_live,
            queue_depth,
            claim_seconds,
            queue_wait_seconds,
            model_seconds,
            model_errors,
            meter,
        })
    }

    /// What the requests to `model` (its id) count into.
    pub fn model_timing(&self, model: &str) -> ModelTiming {
        ModelTiming {
            seconds: self.model_seconds.with_label_values(&[model]),
            errors: self.model_errors.clone(),
            model: model.to_owned(),
        }
    }

    /// What a job's meter counts into.
    pub fn meter(&self) -> MeterMetrics {
        self.meter.clone()
    }

    /// The public page.
    pub fn render(&self) -> String {
        encode(&self.public.gather())
    }

    /// The operator's page: the public metrics and the operator's.
    pub fn render_operator(&self) -> String {
        let mut families = self.public.gather();
        families.extend(self.operator.gather());
        encode(&families)
    }
}

fn encode(families: &[prometheus::proto::MetricFamily]) -> String {
    let mut out = Vec::new();
    // Encoding into a Vec cannot fail for well-formed metrics; an empty page is the worst case.
    let _ = TextEncoder::new().encode(families, &mut out);
    String::from_utf8(out).unwrap_or_default()
}
