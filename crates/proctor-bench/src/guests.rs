//! `proctor-bench guests`: the arithmetic eval built in Rust, Python (componentize-py) and
//! JavaScript (componentize-js), side by side, at zero model latency (`builtin:arith`) under
//! `standard` (256 samples in flight), a fresh instance per sample.
//!
//! Each guest is measured two ways:
//! - through the real `proctor` binary (`proctor run --json`), wall time of the whole process:
//!   once on a cold compile cache (compiling included), once on a tiny dataset with the cache
//!   warm (the start-up: engine, cache load, `describe`, release), then on `--items` items; the
//!   rate is the items over the big run's wall time less the start-up. Its peak RSS is polled
//!   from `/proc`;
//! - in this process through the sandbox's job loop (`proctor_sandbox::run_job`), on a
//!   multi-thread runtime as `proctor run` builds it and on one thread, the eval prepared from
//!   the same warm cache first.
//!
//! It prints a Markdown table; it asserts nothing (a sample that is not `ok` shows in its row).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use proctor_core::{Dataset, Outcome, Policy};
use proctor_sandbox::{
    CancellationToken, CompileCache, EngineSettings, JobSpec, Progress, Sandbox,
};

use crate::dataset;
use crate::table::{Table, count, machine};

/// Items of the start-up run: the fewest `standard` releases a result for.
const STARTUP_ITEMS: u64 = 10;

#[derive(Args)]
pub struct GuestsArgs {
    /// Items of the measured runs (one sample each).
    #[arg(long, default_value_t = 20_000)]
    items: u64,
    /// Which builds to measure.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "rust,py-sdk,js-sdk,py-nowasi,js-nowasi,py"
    )]
    guests: Vec<Guest>,
    /// The directory the Python and JS builds are cached under (the build scripts'
    /// `PROCTOR_TOOLCHAIN_CACHE`); built there when missing. Default:
    /// `~/.cache/proctor-toolchains`.
    #[arg(long)]
    builds: Option<PathBuf>,
    /// The `proctor` binary. Default: the one beside this binary
    /// (`cargo build --release -p proctor-cli` puts it there).
    #[arg(long)]
    proctor: Option<PathBuf>,
    /// Leave out the `proctor run` columns.
    #[arg(long)]
    no_cli: bool,
    /// Leave out the in-process columns.
    #[arg(long)]
    no_in_process: bool,
}

/// One build of the arithmetic eval. (componentize-js's default build is not among them: it
/// imports `wasi:http`, which no policy links; `tests/toolchains.rs` checks it is refused.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Guest {
    /// The Rust example (`proctor_evals::examples::ARITH_WASM`).
    Rust,
    /// `sdk/python/examples/arith` built by `proctor-eval build` (zero WASI): what an
    /// evaluator writing Python builds.
    PySdk,
    /// `sdk/js/examples/arith` built by the JS SDK's `proctor-eval build` (no WASI).
    JsSdk,
    /// componentize-py `--stub-wasi` on raw bindings (`tests/toolchains`): no WASI imports.
    PyNowasi,
    /// componentize-js with every WASI feature disabled, on raw bindings.
    JsNowasi,
    /// componentize-py's default build on raw bindings (imports WASI).
    Py,
}

impl Guest {
    fn label(self) -> &'static str {
        match self {
            Guest::Rust => "Rust",
            Guest::PySdk => "Python SDK",
            Guest::JsSdk => "JS SDK",
            Guest::PyNowasi => "Python, raw, zero-WASI",
            Guest::JsNowasi => "JS, raw, zero-WASI",
            Guest::Py => "Python, raw, default build",
        }
    }

    /// The script that builds it (from the repository's root) and the file it writes, under
    /// the builds' directory.
    fn build(self) -> Option<(&'static str, &'static str)> {
        match self {
            Guest::Rust => None,
            Guest::PySdk => Some(("sdk/python/tests/build.sh", "pysdk/arith.wasm")),
            Guest::JsSdk => Some(("sdk/js/tests/build.sh", "js-sdk/out/arith.wasm")),
            Guest::PyNowasi => Some(("tests/toolchains/build.sh", "out/arith-py-nowasi.wasm")),
            Guest::JsNowasi => Some(("tests/toolchains/build.sh", "out/arith-js-nowasi.wasm")),
            Guest::Py => Some(("tests/toolchains/build.sh", "out/arith-py.wasm")),
        }
    }
}

/// A `proctor run` measurement.
struct CliRow {
    cold: Duration,
    startup: Duration,
    big: Duration,
    ok: u64,
    peak_rss: Option<u64>,
}

/// An in-process measurement.
struct InProcessRow {
    load: Duration,
    multi: Duration,
    multi_ok: u64,
    single: Duration,
    single_ok: u64,
}

struct Row {
    guest: Guest,
    bytes: usize,
    cli: Option<anyhow::Result<CliRow>>,
    in_process: Option<anyhow::Result<InProcessRow>>,
}

pub fn run(args: GuestsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.items >= STARTUP_ITEMS, "--items must be at least 10");
    let work = tempfile::tempdir()?;
    let cache = work.path().join("cache");
    let big = work.path().join("big.jsonl");
    let small = work.path().join("small.jsonl");
    std::fs::write(&big, dataset::arith(args.items))?;
    std::fs::write(&small, dataset::arith(STARTUP_ITEMS))?;
    let proctor = match &args.proctor {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("proctor"),
    };
    if !args.no_cli {
        anyhow::ensure!(
            proctor.exists(),
            "no proctor binary at {}: build it (cargo build --release -p proctor-cli) or give \
             --proctor",
            proctor.display()
        );
    }
    let mut rows = Vec::new();
    for &guest in &args.guests {
        let bytes = guest_bytes(guest, args.builds.as_deref())?;
        let path = work.path().join(format!("{guest:?}.wasm"));
        std::fs::write(&path, &bytes)?;
        let cli = (!args.no_cli).then(|| {
            eprintln!("{}: proctor run", guest.label());
            cli_row(&proctor, &path, &cache, &small, &big)
        });
        let in_process = (!args.no_in_process).then(|| {
            eprintln!("{}: in process", guest.label());
            in_process_row(&bytes, &cache, args.items)
        });
        rows.push(Row {
            guest,
            bytes: bytes.len(),
            cli,
            in_process,
        });
    }
    println!("{}", render(&rows, args.items));
    Ok(())
}

/// The component's bytes: the Rust example from `proctor-evals`, the others from the builds'
/// directory (running the script that builds one first when its file is missing; each script
/// caches by its inputs' digest).
fn guest_bytes(guest: Guest, builds: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let Some((script, file)) = guest.build() else {
        return Ok(proctor_evals::examples::ARITH_WASM.to_vec());
    };
    let dir = match builds {
        Some(d) => d.to_owned(),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
            .join(".cache/proctor-toolchains"),
    };
    let path = dir.join(file);
    if !path.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(script);
        eprintln!("building {}: {}", guest.label(), script.display());
        let status = Command::new("bash")
            .arg(&script)
            .env("PROCTOR_TOOLCHAIN_CACHE", &dir)
            .status()?;
        anyhow::ensure!(status.success(), "{} failed", script.display());
    }
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

fn cli_row(
    proctor: &Path,
    eval: &Path,
    cache: &Path,
    small: &Path,
    big: &Path,
) -> anyhow::Result<CliRow> {
    // A cache of this guest's own: the first run compiles, every later one loads.
    let cache = cache.join(eval.file_stem().unwrap_or_default());
    let (cold, _, _) = proctor_run(proctor, eval, &cache, small)?;
    let (startup, _, _) = proctor_run(proctor, eval, &cache, small)?;
    let (big, ok, peak_rss) = proctor_run(proctor, eval, &cache, big)?;
    Ok(CliRow {
        cold,
        startup,
        big,
        ok,
        peak_rss,
    })
}

/// One `proctor run --json` against `builtin:arith`: its wall time, its ok samples and its
/// peak RSS (bytes), polled from `/proc` while it runs.
fn proctor_run(
    proctor: &Path,
    eval: &Path,
    cache: &Path,
    dataset: &Path,
) -> anyhow::Result<(Duration, u64, Option<u64>)> {
    let started = Instant::now();
    let mut child = Command::new(proctor)
        .arg("run")
        .arg(eval)
        .arg("--dataset")
        .arg(dataset)
        .args(["--model", "builtin:arith", "--json"])
        .env("PROCTOR_CACHE_DIR", cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", proctor.display()))?;
    let status = format!("/proc/{}/status", child.id());
    let mut peak = None;
    while child.try_wait()?.is_none() {
        if let Some(hwm) = vm_hwm(&status) {
            peak = Some(hwm);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output()?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        output.status.success(),
        "proctor run {} failed: {}",
        eval.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .context("proctor run --json printed no JSON report")?;
    let ok = report["samples"]["ok"]
        .as_u64()
        .context("the report has no samples.ok")?;
    Ok((elapsed, ok, peak))
}

/// A process's peak resident set (`VmHWM`), bytes.
fn vm_hwm(status: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status).ok()?;
    let kib = text
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

fn in_process_row(bytes: &[u8], cache: &Path, items: u64) -> anyhow::Result<InProcessRow> {
    let policy = Policy::standard();
    let sandbox = Arc::new(Sandbox::new(
        EngineSettings::for_policy(&policy),
        CompileCache::in_dir(cache.join("in-process")),
    )?);
    let multi = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Once to fill the cache (compiling, untimed), once timed, as a warm `proctor run` loads.
    multi.block_on(sandbox.prepare(bytes))?;
    let fresh = Arc::new(Sandbox::new(
        EngineSettings::for_policy(&policy),
        CompileCache::in_dir(cache.join("in-process")),
    )?);
    drop(sandbox);
    let started = Instant::now();
    let eval = multi.block_on(fresh.prepare(bytes))?;
    let load = started.elapsed();
    let dataset = Arc::new(Dataset::parse(&dataset::arith(items), usize::MAX)?);
    let spec = JobSpec {
        eval,
        dataset,
        model: proctor_models::parse_model_ref("builtin:arith", Some(0))?,
        policy: Arc::new(policy.clone()),
        concurrency: policy.limits.max_concurrency as usize,
        seed: 0,
        samples: None,
    };
    let job = |runtime: &tokio::runtime::Runtime| -> anyhow::Result<(Duration, u64)> {
        let started = Instant::now();
        let totals = runtime.block_on(proctor_sandbox::run_job(
            &fresh,
            &spec,
            &|_: Progress| {},
            &CancellationToken::new(),
        ))?;
        Ok((started.elapsed(), totals.tally.get(Outcome::Ok)))
    };
    let (multi_time, multi_ok) = job(&multi)?;
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (single, single_ok) = job(&current)?;
    Ok(InProcessRow {
        load,
        multi: multi_time,
        multi_ok,
        single,
        single_ok,
    })
}

fn render(rows: &[Row], items: u64) -> String {
    let mut table = Table::new(
        &[
            "guest",
            "size (MB)",
            "`proctor run` samples/s",
            "start-up, warm (s)",
            "first run, cold cache (s)",
            "peak RSS (MiB)",
            "in-process samples/s",
            "in-process, 1 thread",
            "load, warm (ms)",
        ],
        1,
    );
    let rate = |n: u64, ok: u64, t: Duration| {
        let r = count(n as f64 / t.as_secs_f64().max(1e-6));
        if ok == n {
            r
        } else {
            format!("{r} ({} ok)", count(ok as f64))
        }
    };
    let failed = |e: &anyhow::Error| format!("failed: {e:#}");
    for row in rows {
        let mut cells = vec![
            row.guest.label().to_owned(),
            format!("{:.1}", row.bytes as f64 / 1e6),
        ];
        match &row.cli {
            None => cells.extend(std::iter::repeat_n("–".to_owned(), 4)),
            Some(Err(e)) => {
                cells.push(failed(e));
                cells.extend(std::iter::repeat_n("–".to_owned(), 3));
            }
            Some(Ok(c)) => cells.extend([
                rate(items, c.ok, c.big.saturating_sub(c.startup)),
                format!("{:.2}", c.startup.as_secs_f64()),
                format!("{:.2}", c.cold.as_secs_f64()),
                c.peak_rss
                    .map_or_else(|| "–".to_owned(), |b| count(b as f64 / 1048576.0)),
            ]),
        }
        match &row.in_process {
            None => cells.extend(std::iter::repeat_n("–".to_owned(), 3)),
            Some(Err(e)) => {
                cells.push(failed(e));
                cells.extend(std::iter::repeat_n("–".to_owned(), 2));
            }
            Some(Ok(p)) => cells.extend([
                rate(items, p.multi_ok, p.multi),
                rate(items, p.single_ok, p.single),
                format!("{:.0}", p.load.as_secs_f64() * 1e3),
            ]),
        }
        table.row(cells);
    }
    format!(
        "Guests (`proctor-bench guests --items {items}`), {}; the arithmetic eval against \
         `builtin:arith` (zero latency) under `standard` (256 samples in flight), a fresh \
         instance per sample. `proctor run`: {items} items over the run's wall time less the \
         warm start-up (a {STARTUP_ITEMS}-item run); in-process: `run_job` on a multi-thread \
         runtime and on one thread, the eval loaded from a warm compile cache:\n\n{}",
        machine(),
        table.render()
    )
}
