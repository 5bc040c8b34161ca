//! `proctor run`: one eval over one dataset against one model, locally, through the same job
//! loop and release rules as the service.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use proctor_core::{Dataset, Model, Policy, RunReport};
use proctor_models::HostPolicy;
use proctor_sandbox::{
    CancellationToken, CompileCache, DevOutput, DevSink, EngineSettings, JobSpec, Progress, Sandbox,
};

/// Largest dataset `proctor run` reads, in lines.
const MAX_DATASET_LINES: usize = 10_000_000;

#[derive(Args)]
pub struct RunArgs {
    /// The eval component (.wasm).
    eval: PathBuf,
    /// The dataset (JSONL, one JSON value per line).
    #[arg(long)]
    dataset: PathBuf,
    /// A model reference, e.g. `builtin:arith` or `builtin:arith?latency_ms=50&error_rate=0.1`.
    #[arg(
        long,
        conflicts_with = "model_config",
        required_unless_present = "model_config"
    )]
    model: Option<String>,
    /// A model configuration file (TOML).
    #[arg(long)]
    model_config: Option<PathBuf>,
    /// A shipped policy name (`standard`, `strict`) or a policy file.
    #[arg(long, default_value = "standard")]
    policy: String,
    /// Samples in flight; defaults to, and is clamped to, the policy's `max_concurrency`.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    /// Seeds the guests' WASI randomness and the built-in models' choices.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Show each sample's stderr (its first 64 KiB) and how it trapped. For your own machine:
    /// the service never captures guest output, which may carry model text.
    #[arg(long)]
    dev: bool,
}

/// Refusals exit 2 with one line; internal failures exit 1.
pub enum Failure {
    Refused(anyhow::Error),
    Internal(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Refused(e.into())
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    run_to_exit(run_async(args))
}

/// Runs a command's body on a multi-thread runtime and maps its failure to the exit status:
/// a refusal exits 2 with one line, an internal failure 1.
pub fn run_to_exit(body: impl Future<Output = Result<(), Failure>>) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match runtime.block_on(body) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Failure::Refused(e)) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(2))
        }
        Err(Failure::Internal(e)) => {
            eprintln!("internal error: {e:#}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn run_async(args: RunArgs) -> Result<(), Failure> {
    let policy = load_policy(&args.policy)?;
    let eval_bytes = read(&args.eval)?;
    let dataset_bytes = read(&args.dataset)?;
    let dataset = Dataset::parse(&dataset_bytes, MAX_DATASET_LINES)
        .with_context(|| format!("dataset {}", args.dataset.display()))?;
    let model = load_model(&args)?;
    let job = LocalJob {
        eval_label: args.eval.display().to_string(),
        eval_bytes: &eval_bytes,
        dataset,
        model,
        policy,
        concurrency: args.concurrency,
        seed: args.seed,
        dev: args.dev,
    };
    let report = evaluate(job).await?;
    if args.json {
        let json =
            serde_json::to_string_pretty(&report).map_err(|e| Failure::Internal(e.into()))?;
        println!("{json}");
    } else {
        print!("{}", render_table(&report));
    }
    Ok(())
}

/// One local job: what `proctor run` and `proctor demo` evaluate.
pub struct LocalJob<'a> {
    /// How errors name the eval (its path).
    pub eval_label: String,
    pub eval_bytes: &'a [u8],
    pub dataset: Dataset,
    pub model: Arc<dyn Model>,
    pub policy: Policy,
    /// Samples in flight; `None` takes the policy's `max_concurrency`, and more is clamped.
    pub concurrency: Option<usize>,
    pub seed: u64,
    /// The dev loop: print each sample's stderr and trap.
    pub dev: bool,
}

/// Prepares the eval, runs every sample through the job loop the service uses, and releases
/// the result under the policy. A progress bar goes to stderr when it is a terminal.
pub async fn evaluate(job: LocalJob<'_>) -> Result<RunReport, Failure> {
    let max = job.policy.limits.max_concurrency as usize;
    let concurrency = match job.concurrency {
        Some(0) => return Err(anyhow::anyhow!("--concurrency must be at least 1").into()),
        Some(c) if c > max => {
            eprintln!("note: --concurrency {c} is above the policy's max_concurrency; using {max}");
            max
        }
        Some(c) => c,
        None => max,
    };
    // The pool is sized for the policy, whose limits the sandbox checks against it; the job
    // itself keeps `concurrency` samples in flight.
    let settings = EngineSettings::for_policy(&job.policy);
    let cache =
        CompileCache::default_dir().map_or_else(CompileCache::disabled, CompileCache::in_dir);
    let sandbox = Arc::new(Sandbox::new(settings, cache).map_err(|e| Failure::Internal(e.into()))?);
    let eval = sandbox
        .prepare(job.eval_bytes)
        .await
        .with_context(|| format!("eval {}", job.eval_label))?;
    eval.check_policy(&job.policy)?;
    let policy_name = job.policy.name.clone();
    let spec = JobSpec {
        eval,
        dataset: Arc::new(job.dataset),
        model: job.model,
        policy: Arc::new(job.policy),
        concurrency,
        seed: job.seed,
        samples: None,
    };
    let bar = ProgressBar::new(spec.dataset.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} samples  {per_sec}  eta {eta}")
            .map_err(|e| Failure::Internal(e.into()))?,
    );
    let progress = {
        let bar = bar.clone();
        move |p: Progress| bar.set_position(p.done)
    };
    if job.dev
        && !spec
            .eval
            .imports
            .wasi
            .iter()
            .any(|i| i.starts_with("wasi:cli/stderr"))
    {
        eprintln!(
            "note: this component imports no WASI stderr (a zero-WASI build), so --dev shows only \
             traps; build it with WASI (the SDKs' --wasi) to see what it prints"
        );
    }
    let dev_sink = {
        let bar = bar.clone();
        move |output: DevOutput| {
            if !output.is_empty() {
                bar.suspend(|| eprint!("{}", render_dev(&output)));
            }
        }
    };
    let totals = proctor_sandbox::run_job_with(
        &sandbox,
        &spec,
        &progress,
        &CancellationToken::new(),
        job.dev.then_some(&dev_sink as &DevSink),
    )
    .await?;
    let report = proctor_sandbox::release_totals(&spec, &policy_name, &totals)
        .ok_or_else(|| Failure::Internal(anyhow::anyhow!("the job was cancelled")))?;
    bar.finish_and_clear();
    Ok(report)
}

/// One sample's stderr and trap, as the dev loop prints them.
fn render_dev(output: &DevOutput) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "--- sample {} ({})\n",
        output.index,
        output.outcome.as_str()
    );
    if let Some(trap) = &output.trap {
        let _ = writeln!(out, "trap: {trap}");
    }
    if !output.stderr.is_empty() {
        let text = String::from_utf8_lossy(&output.stderr);
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    if output.dropped > 0 {
        let _ = writeln!(out, "[{} more bytes of stderr dropped]", output.dropped);
    }
    out
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A shipped name, else a file path.
pub fn load_policy(arg: &str) -> anyhow::Result<Policy> {
    if proctor_core::policy::BUILTIN_POLICIES
        .iter()
        .any(|(n, _)| *n == arg)
    {
        return Ok(Policy::named(arg)?);
    }
    let path = Path::new(arg);
    if !path.exists() {
        return Err(proctor_core::PolicyError::UnknownName(arg.to_owned()).into());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy {}", path.display()))?;
    Policy::from_toml(&text).with_context(|| format!("policy {}", path.display()))
}

fn load_model(args: &RunArgs) -> anyhow::Result<Arc<dyn Model>> {
    if let Some(reference) = &args.model {
        return Ok(proctor_models::parse_model_ref(reference, Some(args.seed))?);
    }
    let path = args
        .model_config
        .as_ref()
        .context("give --model or --model-config")?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config = proctor_models::ModelConfig::from_toml(&text)
        .with_context(|| format!("model config {}", path.display()))?;
    let credential = config.credential_from_env()?;
    // A local run calls the user's own endpoints from the user's machine: no host rules (the
    // service's are for its network, not the user's).
    Ok(config.build(credential, Some(args.seed), &HostPolicy::any())?)
}

pub fn render_table(r: &RunReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let short = |d: &proctor_core::Sha256Digest| d.to_hex()[..12].to_owned();
    let _ = writeln!(
        out,
        "eval      {} {}  (sha256 {}…)",
        r.eval.name,
        r.eval.version,
        short(&r.eval.sha256)
    );
    let _ = writeln!(
        out,
        "dataset   {} items  (sha256 {}…)",
        r.dataset.items,
        short(&r.dataset.sha256)
    );
    let _ = writeln!(
        out,
        "model     {}  ({} {})",
        r.model.reference, r.model.name, r.model.version
    );
    let _ = writeln!(
        out,
        "policy    {}  (sha256 {}…)",
        r.policy.name,
        short(&r.policy.sha256)
    );
    let _ = writeln!(
        out,
        "samples   {} total, {} ok",
        r.samples.total, r.samples.ok
    );
    let counts = serde_json::to_value(r.samples).unwrap_or_default();
    for group in ["failed", "trapped"] {
        let nonzero: Vec<String> = counts[group]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !nonzero.is_empty() {
            let _ = writeln!(out, "  {group:<8}{}", nonzero.join(", "));
        }
    }
    let _ = writeln!(
        out,
        "usage     {} queries, {} input tokens, {} output tokens",
        r.usage.queries, r.usage.input_tokens, r.usage.output_tokens
    );
    let d = r.release.decimals as usize;
    // Figures lie on a grid relative to each metric's range, so they print as they are.
    let num = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v}"));
    match r.release.reason.as_deref() {
        Some(reason) => {
            let _ = writeln!(out, "release   withheld: {reason}");
        }
        None => {
            let _ = writeln!(
                out,
                "\n{:<20} {:>8} {:>10} {:>10}   95% interval",
                "metric", "n", "mean", "stderr"
            );
            for (name, m) in &r.metrics {
                let ci = m
                    .ci95
                    .map_or_else(|| "-".to_owned(), |[lo, hi]| format!("[{lo}, {hi}]"));
                let _ = writeln!(
                    out,
                    "{name:<20} {:>8} {:>10} {:>10}   {ci}",
                    m.n,
                    num(m.mean),
                    num(m.stderr)
                );
            }
            let noise = match r.release.epsilon {
                Some(eps) => format!("Laplace noise, epsilon {eps}"),
                None => "no noise".to_owned(),
            };
            if !r.release.withheld_metrics.is_empty() {
                let _ = writeln!(
                    out,
                    "{:<20} withheld: reported by fewer than {} ok samples",
                    r.release.withheld_metrics.join(", "),
                    r.release.min_samples
                );
            }
            let _ = writeln!(
                out,
                "\nrelease   released ({noise}, a grid of 10^-{d} of each range, min {} samples)",
                r.release.min_samples
            );
        }
    }
    let open = if r.leakage.excluded.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = r.leakage.excluded.iter().map(|c| c.as_str()).collect();
        format!(
            " (not covering {}, which the policy leaves open)",
            names.join(", ")
        )
    };
    let _ = writeln!(
        out,
        "leakage   at most {:.1} bits about the model's outputs{open}",
        r.leakage.bits_max
    );
    out
}
