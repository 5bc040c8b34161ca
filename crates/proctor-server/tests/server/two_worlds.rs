//! Two worlds (issue 11): the same hostile job, run through the real service against two
//! models that the evaluator cannot tell apart (one registration, one attested descriptor:
//! vendor `acme`, `openai:mock-1`, version `1`) but that answer differently: world A answers
//! the sum, world B the sum + 1. The guest steers every per-sample channel by the answer, so
//! every evaluator-visible byte that depends on more than the noised release would differ.
//!
//! Under `strict` (DP, a time grid, through a grant with `epsilon_total`) each world's server
//! runs on a [`ManualClock`]: a job's end is padded to the grid, its worker waits for the
//! clock, and the test moves the clock only once the worker waits, so every visible time is
//! the same in both worlds. The test reads everything the evaluator (or anyone, on the public
//! routes) can read, after setup, while each job runs, while its end is held back, and after
//! it ended: job views and the job list, the result, the grant and its budget, models, the
//! account, attestations and their envelopes, the log's entries, checkpoint and proofs,
//! `/metrics`. Then:
//!
//! - within a world, each job shows one view per route while it runs (no live progress, no
//!   attempts): polls that land between states see one of the two states, nothing else;
//! - between worlds, every response is byte-identical once normalized for what two
//!   independent servers legitimately differ in: ids (UUIDs, named in order of appearance),
//!   the service key and signatures, the hashes that cover signed bytes (roots, proofs), the
//!   wall-clock times of the setup before the first job, and the DP-noised figures (sample
//!   counts but `total`, usage, metric figures, which metrics were withheld);
//! - the noised figures are tested statistically, world by world, against the mechanism the
//!   release states: the test knows what every sample did (it wrote the guest and the
//!   models), so it knows each figure's distribution (the truth plus discrete Laplace noise
//!   at the stated scale, clamped; for means, many draws of `proctor_core::release` of the
//!   truth) and checks that the service's figures, over several jobs, are draws of it
//!   (randomized probability integral transform, then Kolmogorov-Smirnov and tail tests).
//!   Any other dependence on the answers (a noise scale that moved, an outcome a sample's
//!   timing changed, figures released exactly) shows as a departure from it. Running the
//!   release many times through the service would be too slow; the reports of 4 to 8 jobs
//!   per world give 70 to 130 independently noised figures per world.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use base64::Engine as _;
use proctor_core::{Accumulator, MetricSpec, Outcome, OutcomeTally, Policy, Usage};
use proctor_evals::test_guests::{ANSWER_CHANNELS, LEAK_SCORES};
use proctor_server::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::common::{Body, FIXED_NOW, TestDb, TestServer, arith_sum, str_of};

/// Prompt and completion tokens the mock bills per request.
const PROMPT_TOKENS: u64 = 9;
const COMPLETION_TOKENS: u64 = 5;
/// strict's `release.time_grid_s`, in seconds: one step of the manual clock.
const GRID: Duration = Duration::from_secs(60);
/// Draws of the reference release per world.
const REFERENCE_DRAWS: usize = 4000;
/// The false-alarm rate of each Kolmogorov-Smirnov test. A run makes eight of them (two
/// pools, two worlds, two tests) besides the tail tests, so 1e-3 each would fail about one CI
/// run in 125 on noise alone; at 1e-4 the check still flags exact figures and figures drawn
/// around the other world (`the_noise_check_flags_...`: D = 0.31 and 0.22 against 0.20).
const ALPHA: f64 = 1e-4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_strict_nothing_an_evaluator_sees_of_an_answer_steered_job_tells_the_worlds_apart()
-> anyhow::Result<()> {
    // Ok samples: all 320 in world A, 240 in world B; strict's count noise here has scale
    // 14, so a release is withheld (fewer than 50) with probability below 1e-6 a job.
    two_worlds(&Hostile {
        guest: ANSWER_CHANNELS,
        jobs: 8,
        items: 320,
        truth: answer_channels_truth,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_strict_nothing_an_evaluator_sees_of_a_score_leaking_job_tells_the_worlds_apart()
-> anyhow::Result<()> {
    // Ok samples: 9 in 16 in world A (the even bytes of `The answer is 0.`), 8 in 16 in world
    // B; with three metrics the count noise has scale 26, so 640 samples keep a withheld
    // release below probability 1e-4 a job.
    two_worlds(&Hostile {
        guest: LEAK_SCORES,
        jobs: 4,
        items: 640,
        truth: leak_scores_truth,
    })
    .await
}

/// A hostile guest, how many jobs of it each world runs and of how many samples, and what its
/// samples do against a model that answers `off_by` away from the sum. Enough samples that
/// both worlds' ok samples clear strict's `min_samples` by many noise scales: whether a
/// release is withheld follows from the noised count, and would differ between the worlds
/// by chance alone.
struct Hostile {
    guest: &'static [u8],
    jobs: usize,
    items: usize,
    truth: fn(off_by: i64, items: usize, specs: &[MetricSpec], decimals: u64) -> Truth,
}

/// What a job's samples did, exactly: what the release noises.
struct Truth {
    tally: OutcomeTally,
    accumulators: Vec<Accumulator>,
    usage: Usage,
}

/// `test-guests/answer-channels`: a right answer burns fuel, asks three more questions and
/// scores 0.75; a wrong one traps on every eighth item, fails on the next, else scores 0.25.
fn answer_channels_truth(off_by: i64, items: usize, specs: &[MetricSpec], decimals: u64) -> Truth {
    let mut truth = Truth::new(specs, decimals);
    for index in 0..items {
        let right = off_by == 0;
        let queries = if right { 4 } else { 1 };
        truth.usage.add(&billed(queries));
        let outcome = match (right, index % 8) {
            (true, _) => Some(0.75),
            (false, 0) => {
                truth.tally.add(Outcome::Other);
                None
            }
            (false, 1) => {
                truth.tally.add(Outcome::Failed);
                None
            }
            (false, _) => Some(0.25),
        };
        if let Some(score) = outcome {
            truth.tally.add(Outcome::Ok);
            truth.accumulators[0].add(&specs[0], score);
        }
    }
    truth
}

/// `test-guests/leak-scores`: sample `i` reads byte `i mod len` of the reply (the mock says
/// `The answer is {0 + off_by}.` to its question), reports it (`byte`), one of its bits
/// (`bit`, 1000 on every fifth sample, clipped), `flag` when that bit is set, and fails when
/// the byte is odd (its scores then count for nothing).
fn leak_scores_truth(off_by: i64, items: usize, specs: &[MetricSpec], decimals: u64) -> Truth {
    let mut truth = Truth::new(specs, decimals);
    let reply = format!("The answer is {off_by}.");
    let bytes = reply.as_bytes();
    for index in 0..items {
        truth.usage.add(&billed(1));
        let byte = bytes[index % bytes.len()];
        if byte % 2 == 1 {
            truth.tally.add(Outcome::Failed);
            continue;
        }
        truth.tally.add(Outcome::Ok);
        let bit = (byte >> (index % 8)) & 1;
        let bit_value = if index % 5 == 0 {
            1000.0
        } else {
            f64::from(bit)
        };
        truth.accumulators[0].add(&specs[0], f64::from(byte));
        truth.accumulators[1].add(&specs[1], bit_value);
        if bit == 1 {
            truth.accumulators[2].add(&specs[2], 1.0);
        }
    }
    truth
}

impl Truth {
    fn new(specs: &[MetricSpec], decimals: u64) -> Truth {
        Truth {
            tally: OutcomeTally::default(),
            accumulators: vec![Accumulator::new(decimals); specs.len()],
            usage: Usage::default(),
        }
    }
}

/// What `queries` requests to the mock are billed.
fn billed(queries: u64) -> Usage {
    Usage {
        queries,
        input_tokens: queries * PROMPT_TOKENS,
        output_tokens: queries * COMPLETION_TOKENS,
    }
}

#[test]
fn the_noise_check_flags_figures_released_exactly_or_drawn_around_the_other_world() {
    // The check on its own, on reports made here: draws of world A's true release pass; the
    // same figures with the counts, usage and n put back to the truth (a release without
    // noise) fail, and so do draws of world B's release checked against world A's truth.
    let policy = Policy::named("strict").expect("strict");
    let specs = vec![MetricSpec {
        name: "score".into(),
        description: String::new(),
        min: 0.0,
        max: 1.0,
    }];
    let decimals = policy.release.decimals;
    let truth = |off_by| answer_channels_truth(off_by, 320, &specs, decimals);
    let (a, b) = (truth(0), truth(1));
    let mut rng = SplitMix(7);
    let mut draws = |t: &Truth| -> Vec<Value> {
        (0..8)
            .map(|_| {
                let released = proctor_core::release(
                    &policy,
                    &specs,
                    &t.accumulators,
                    &t.tally,
                    t.usage,
                    &mut || rng.next(),
                );
                serde_json::to_value(released).expect("serializes")
            })
            .collect()
    };
    let world = |reports| World {
        seen: Vec::new(),
        reports,
        specs: specs.clone(),
        policy: policy.clone(),
        problems: Vec::new(),
    };
    let fair = draws(&a);
    assert_eq!(noise_agrees(&world(fair.clone()), &a), Vec::<String>::new());

    let exact: Vec<Value> = fair
        .into_iter()
        .map(|mut report| {
            report["samples"] = serde_json::to_value(a.tally.counts()).expect("serializes");
            report["usage"] = serde_json::to_value(a.usage).expect("serializes");
            report["metrics"]["score"]["n"] = json!(a.accumulators[0].n);
            report
        })
        .collect();
    assert!(
        !noise_agrees(&world(exact), &a).is_empty(),
        "exact figures pass"
    );
    assert!(
        !noise_agrees(&world(draws(&b)), &a).is_empty(),
        "the other world's figures pass"
    );
}

async fn two_worlds(hostile: &Hostile) -> anyhow::Result<()> {
    let started = Instant::now();
    let a = run_world(hostile, 0).await?;
    let took_a = started.elapsed();
    let b = run_world(hostile, 1).await?;
    eprintln!(
        "two worlds: A took {took_a:?}, B {:?}; {} responses each",
        started.elapsed() - took_a,
        a.seen.len()
    );
    let mut problems = Vec::new();
    for (label, world) in [("A", &a), ("B", &b)] {
        problems.extend(world.problems.iter().map(|p| format!("world {label}: {p}")));
    }
    compare(&a.seen, &b.seen, &mut problems);
    // Both worlds' jobs were checked, and their models found the ones fingerprinted.
    for (label, world) in [("A", &a), ("B", &b)] {
        for report in &world.reports {
            let identity = &report["model_identity"];
            if (&identity["verdict"], &identity["queries"]) != (&json!("same"), &json!(64)) {
                problems.push(format!("world {label}: a job's identity is {identity}"));
            }
        }
    }
    for (label, world, off_by) in [("A", &a, 0), ("B", &b, 1)] {
        let truth = (hostile.truth)(
            off_by,
            hostile.items,
            &world.specs,
            world.policy.release.decimals,
        );
        problems.extend(
            noise_agrees(world, &truth)
                .into_iter()
                .map(|p| format!("world {label}: {p}")),
        );
    }
    anyhow::ensure!(problems.is_empty(), "{}", summary(&problems));
    Ok(())
}

/// The problems grouped by their shape (digits aside: job numbers, indexes, times), each
/// shape once with how often it occurred and its first instance.
fn summary(problems: &[String]) -> String {
    let mut shapes: BTreeMap<String, (usize, &String)> = BTreeMap::new();
    for problem in problems {
        let shape: String = problem
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        shapes.entry(shape).or_insert((0, problem)).0 += 1;
    }
    let mut out = format!("{} problems, {} kinds:", problems.len(), shapes.len());
    for (count, first) in shapes.values() {
        out.push_str(&format!("\n- {count}x, e.g. {first}"));
    }
    out
}

/// One response as the evaluator (or the public) got it, normalized.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    what: String,
    status: u16,
    content_type: String,
    body: Value,
}

/// What one world showed.
struct World {
    seen: Vec<Seen>,
    /// The result views' reports, raw, one per job.
    reports: Vec<Value>,
    specs: Vec<MetricSpec>,
    policy: Policy,
    problems: Vec<String>,
}

/// An OpenAI-compatible endpoint that says `The answer is {sum + off_by}.` to every question,
/// billing the same tokens whatever it says.
async fn answer(State(off_by): State<i64>, Json(request): Json<Value>) -> Json<Value> {
    let question = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    let said = arith_sum(question) + off_by;
    Json(json!({
        "model": "mock-1",
        "choices": [{"index": 0, "message": {"role": "assistant",
                     "content": format!("The answer is {said}.")}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS}
    }))
}

async fn run_world(hostile: &Hostile, off_by: i64) -> anyhow::Result<World> {
    let router = axum::Router::new()
        .route("/v1/chat/completions", post(answer))
        .with_state(off_by);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}/v1", listener.local_addr()?);
    let mock = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let clock = ManualClock::new(FIXED_NOW);
    let db = TestDb::sqlite()?;
    let server = {
        let clock = clock.clone();
        TestServer::start_with(&db, 1, move |config| {
            config.clock = Arc::new(clock);
            // Each world fingerprints its own endpoint, and checks every job before and
            // after: the identity figures are evaluator-visible, so they must not tell the
            // worlds apart either.
            config.identity.enabled = true;
        })
        .await?
    };
    let world = Observer::new(&server, &clock, &endpoint).run(hostile).await;
    server.stop().await;
    mock.abort();
    db.cleanup().await?;
    world
}

/// Reads everything one world shows, and names what must be normalized.
struct Observer<'a> {
    s: &'a TestServer,
    clock: &'a ManualClock,
    endpoint: &'a str,
    names: Names,
    seen: Vec<Seen>,
    problems: Vec<String>,
    evaluator: String,
    /// Path templates' placeholders and what they stand for in this world.
    paths: BTreeMap<&'static str, String>,
}

impl<'a> Observer<'a> {
    /// Waits until the model's fingerprint is ready, so every job of both worlds is checked.
    async fn wait_fingerprinted(&self, vendor: &str, model: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let path = format!("/v1/models/{model}/identity");
            let (status, view) = self.s.call("GET", &path, Some(vendor), Body::None).await?;
            anyhow::ensure!(status == StatusCode::OK, "{status} {view}");
            match view["state"].as_str() {
                Some("ready") => return Ok(()),
                Some("fingerprinting") => {}
                _ => anyhow::bail!("the model's fingerprint did not become ready: {view}"),
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "{view}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn new(s: &'a TestServer, clock: &'a ManualClock, endpoint: &'a str) -> Observer<'a> {
        Observer {
            s,
            clock,
            endpoint,
            names: Names::default(),
            seen: Vec::new(),
            problems: Vec::new(),
            evaluator: String::new(),
            paths: BTreeMap::new(),
        }
    }

    async fn run(mut self, hostile: &Hostile) -> anyhow::Result<World> {
        let s = self.s;
        let (vendor_id, vendor) = s.account("acme", "vendor", None).await?;
        let (evaluator_id, evaluator) = s.account("uni", "evaluator", Some("academic")).await?;
        self.names.name(&vendor_id, "vendor");
        self.names.name(&evaluator_id, "evaluator");
        self.evaluator = evaluator.clone();
        // One registration in both worlds but for the endpoint, which only the vendor sees.
        let (status, model) = s
            .call(
                "POST",
                "/v1/models",
                Some(&vendor),
                Body::Json(json!({
                    "name": "hosted", "version": "1",
                    "config": {"adapter": "openai", "model": "mock-1",
                               "base_url": self.endpoint, "max_attempts": 1}
                })),
            )
            .await?;
        anyhow::ensure!(status == StatusCode::CREATED, "{status} {model}");
        let model = str_of(&model, "id")?;
        self.names.name(&model, "model");
        self.wait_fingerprinted(&vendor, &model).await?;
        let grant = s
            .grant(
                &vendor,
                &model,
                json!({"tier": "academic"}),
                json!({"policy": "strict", "budgets": {"epsilon_total": hostile.jobs as f64}}),
            )
            .await?;
        let grant = str_of(&grant, "id")?;
        self.names.name(&grant, "grant");

        let eval = self
            .record_call(
                "upload the eval",
                "POST",
                "/v1/evals",
                Body::Bytes(hostile.guest.to_vec()),
            )
            .await?;
        let specs: Vec<MetricSpec> = serde_json::from_value(eval["metrics"].clone())?;
        // Item i asks for the sum of two numbers (of either sign) that the index spreads.
        let dataset_text: String = (0..hostile.items)
            .map(|i| {
                let (a, b) = ((i * 37) % 1000, (i * 91) % 1000);
                format!("{{\"a\": {a}, \"b\": -{b}}}\n")
            })
            .collect();
        let dataset = self
            .record_call(
                "upload the dataset",
                "POST",
                "/v1/datasets",
                Body::Bytes(dataset_text.into_bytes()),
            )
            .await?;
        let (status, key) = s
            .client
            .get(format!("{}/v1/public-key", s.base))
            .send()
            .await
            .map(|r| (r.status(), r.headers().get("x-proctor-key-id").cloned()))?;
        anyhow::ensure!(status == StatusCode::OK, "{status}");
        if let Some(key) = key.as_ref().and_then(|k| k.to_str().ok()) {
            self.names.name(key, "key-id");
        }
        self.paths.insert("{model}", model.clone());
        self.paths.insert("{grant}", grant.clone());
        self.paths.insert("{eval}", str_of(&eval, "id")?);
        self.paths.insert("{dataset}", str_of(&dataset, "id")?);
        let no_job = |routes: &[&'static str]| -> Vec<&'static str> {
            routes
                .iter()
                .copied()
                .filter(|r| !r.contains("{job}"))
                .collect()
        };
        self.snapshot(
            "after setup",
            &no_job(&EVALUATOR_ROUTES),
            &no_job(&PUBLIC_ROUTES),
        )
        .await?;
        self.names.setup_over();

        let policy = Policy::named("strict")?;
        let mut reports = Vec::new();
        for k in 0..hostile.jobs {
            reports.push(self.one_job(k, &policy).await?);
        }
        Ok(World {
            seen: self.seen,
            reports,
            specs,
            policy,
            problems: self.problems,
        })
    }

    /// Submits job `k`, watches it run, end and be logged; returns its result's report.
    async fn one_job(&mut self, k: usize, policy: &Policy) -> anyhow::Result<Value> {
        let s = self.s;
        let body = json!({
            "eval": self.paths["{eval}"], "dataset": self.paths["{dataset}"],
            "model": self.paths["{model}"]
        });
        let (status, job) = s
            .call("POST", "/v1/jobs", Some(&self.evaluator), Body::Json(body))
            .await?;
        anyhow::ensure!(status == StatusCode::CREATED, "{status} {job}");
        let id = str_of(&job, "id")?;
        self.names.name(&id, &format!("job-{k}"));
        self.paths.insert("{job}", id.clone());
        anyhow::ensure!(
            job["policy"]["sha256"] == policy.digest().to_hex().as_str(),
            "the job runs under strict as shipped: {job}"
        );
        let submitted = self.names.value(job.clone());
        self.seen.push(Seen {
            what: format!("job {k}: POST /v1/jobs"),
            status: status.as_u16(),
            content_type: "application/json".into(),
            body: submitted.clone(),
        });

        // Until a worker has it: queued, as submitted, or running.
        let path = format!("/v1/jobs/{id}");
        let mut between = BTreeSet::new();
        let started = Instant::now();
        loop {
            let view = self.job_view(&path).await?;
            let status = view["status"].as_str().unwrap_or_default().to_owned();
            between.insert(view.to_string());
            if status != "queued" {
                break;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // While it runs, and once its samples are done and its worker waits for the clock:
        // one snapshot, whatever the samples are doing.
        let mut running = Vec::new();
        let held = loop {
            let waiting = self.clock.waiting() > 0;
            let snapshot = self
                .capture(
                    &format!("job {k} running"),
                    &EVALUATOR_ROUTES,
                    &PUBLIC_ROUTES,
                )
                .await?;
            let ended = snapshot[0].body["status"] != "running";
            running.push(snapshot);
            if waiting || ended {
                break !ended;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "never done");
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        if !held {
            self.problems
                .push(format!("job {k} ended without waiting for its padded end"));
        }
        let last = running.pop().unwrap_or_default();
        for earlier in &running {
            for (one, other) in earlier.iter().zip(&last) {
                if one != other {
                    self.problems.push(format!(
                        "job {k}: {} changed while the job ran: {} then {}",
                        one.what, one.body, other.body
                    ));
                }
            }
        }
        let running_view = last
            .first()
            .map(|seen| seen.body.clone())
            .unwrap_or_default();
        if held {
            if !running_view["progress"]["done"].is_null() {
                self.problems.push(format!(
                    "job {k}: a running view shows progress: {running_view}"
                ));
            }
            if !running_view["attempts"].is_null() {
                self.problems.push(format!(
                    "job {k}: a running view shows attempts: {running_view}"
                ));
            }
        }
        self.check_between(k, "before it ran", &between, &[&submitted, &running_view]);
        self.seen.extend(last);

        // The clock moves a grid step at a time until the worker writes the end.
        let mut steps = 0u32;
        let mut between = BTreeSet::new();
        let ended_view = loop {
            if self.clock.waiting() > 0 {
                self.clock.advance(GRID);
                steps += 1;
            }
            let step_started = Instant::now();
            let view = loop {
                let view = self.job_view(&path).await?;
                between.insert(view.to_string());
                if view["status"] != "running" || step_started.elapsed() > Duration::from_secs(3) {
                    break view;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            if view["status"] != "running" {
                break view;
            }
            anyhow::ensure!(steps < 10, "the end never came: {view}");
        };
        self.check_between(k, "while it ended", &between, &[&running_view, &ended_view]);
        self.seen.push(Seen {
            what: format!("job {k}: clock steps to its end"),
            status: 0,
            content_type: String::new(),
            body: json!(steps),
        });

        let result = self.raw_get(&format!("{path}/result"), true).await?;
        let ended = format!("job {k} ended");
        self.snapshot(&ended, &EVALUATOR_ROUTES, &PUBLIC_ROUTES)
            .await?;
        self.log(&ended).await?;
        let report = result["report"].clone();
        self.attested_as_released(k, &report).await?;
        Ok(report)
    }

    /// Polls between two states see one of them, nothing else.
    fn check_between(&mut self, k: usize, when: &str, seen: &BTreeSet<String>, states: &[&Value]) {
        let states: BTreeSet<String> = states.iter().map(|v| v.to_string()).collect();
        for view in seen.difference(&states) {
            self.problems
                .push(format!("job {k}: {when}, a third view: {view}"));
        }
    }

    /// The normalized view at `path`.
    async fn job_view(&mut self, path: &str) -> anyhow::Result<Value> {
        let view = self.raw_get(path, true).await?;
        Ok(self.names.value(view))
    }

    /// GETs `path` (as the evaluator when `evaluator`) and parses its JSON.
    async fn raw_get(&self, path: &str, evaluator: bool) -> anyhow::Result<Value> {
        let token = evaluator.then_some(self.evaluator.as_str());
        let (status, body) = self.s.call("GET", path, token, Body::None).await?;
        anyhow::ensure!(status == StatusCode::OK, "{path}: {status} {body}");
        Ok(body)
    }

    /// Sends a request as the evaluator and records its answer; returns the raw body.
    async fn record_call(
        &mut self,
        what: &str,
        method: &str,
        path: &str,
        body: Body,
    ) -> anyhow::Result<Value> {
        let (status, bytes) = self
            .s
            .call_raw(method, path, Some(&self.evaluator), body)
            .await?;
        anyhow::ensure!(status.is_success(), "{path}: {status}");
        let raw: Value = serde_json::from_slice(&bytes)?;
        let body = self.names.value(raw.clone());
        self.seen.push(Seen {
            what: what.to_owned(),
            status: status.as_u16(),
            content_type: "application/json".into(),
            body,
        });
        Ok(raw)
    }

    /// Records every route of `evaluator` and `public`.
    async fn snapshot(
        &mut self,
        when: &str,
        evaluator: &[&str],
        public: &[&str],
    ) -> anyhow::Result<()> {
        let seen = self.capture(when, evaluator, public).await?;
        self.seen.extend(seen);
        Ok(())
    }

    /// Reads every route of `evaluator` (with the evaluator's token) and `public` (with none).
    async fn capture(
        &mut self,
        when: &str,
        evaluator: &[&str],
        public: &[&str],
    ) -> anyhow::Result<Vec<Seen>> {
        let mut out = Vec::new();
        let routes = evaluator
            .iter()
            .map(|r| (*r, true))
            .chain(public.iter().map(|r| (*r, false)));
        for (template, as_evaluator) in routes {
            let mut path = template.to_owned();
            for (placeholder, id) in &self.paths {
                path = path.replace(placeholder, id);
            }
            out.push(self.get(when, template, &path, as_evaluator).await?);
        }
        Ok(out)
    }

    async fn get(
        &mut self,
        when: &str,
        template: &str,
        path: &str,
        as_evaluator: bool,
    ) -> anyhow::Result<Seen> {
        let mut request = self.s.client.get(format!("{}{path}", self.s.base));
        if as_evaluator {
            request = request.bearer_auth(&self.evaluator);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.bytes().await?;
        let body = if template == "/metrics" {
            Value::String(self.names.text(&without_own_requests(&bytes)))
        } else {
            self.names.body(&bytes)
        };
        Ok(Seen {
            what: format!("{when}: GET {template}"),
            status,
            content_type,
            body,
        })
    }

    /// Every log entry, its inclusion proof, and the consistency proof from every older size.
    async fn log(&mut self, when: &str) -> anyhow::Result<()> {
        let size = self.s.log_size().await?;
        for index in 0..size {
            for template in [
                format!("/v1/log/entries/{index}"),
                format!("/v1/log/proof/inclusion?index={index}"),
                format!("/v1/log/proof/consistency?old={}", index + 1),
            ] {
                let seen = self.get(when, &template, &template, false).await?;
                self.seen.push(seen);
            }
        }
        Ok(())
    }

    /// The attestation carries the very figures the evaluator got: one draw of the noise.
    async fn attested_as_released(&mut self, k: usize, report: &Value) -> anyhow::Result<()> {
        let job = self.paths["{job}"].clone();
        let statement = self.s.result_statement(&job).await?;
        let predicate = &statement["predicate"];
        for key in ["samples", "usage", "metrics", "release", "leakage"] {
            if predicate[key] != report[key] {
                self.problems.push(format!(
                    "job {k}: the attestation's {key} is not the result's: {} vs {}",
                    predicate[key], report[key]
                ));
            }
        }
        Ok(())
    }
}

/// What the evaluator reads with its token; the job's view first.
const EVALUATOR_ROUTES: [&str; 11] = [
    "/v1/jobs/{job}",
    "/v1/jobs",
    "/v1/jobs/{job}/result",
    "/v1/grants",
    "/v1/grants/{grant}",
    "/v1/grants/{grant}/budget",
    "/v1/models",
    "/v1/models/{model}",
    "/v1/me",
    "/v1/evals/{eval}",
    "/v1/datasets/{dataset}",
];

/// What anyone reads.
const PUBLIC_ROUTES: [&str; 9] = [
    "/v1/log/checkpoint",
    "/v1/log/entries",
    "/v1/public-key",
    "/metrics",
    "/v1/attestations/{job}",
    "/v1/attestations/{job}?kind=accepted",
    "/v1/attestations/{job}/envelope",
    "/v1/attestations/{job}/envelope?kind=accepted",
    "/healthz",
];

/// `/metrics` without the HTTP request counters: they count the test's own polls, whose
/// number depends on how long the test waited, not on anything the service chose to show.
fn without_own_requests(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|line| !line.starts_with("proctor_http_requests_total{"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Names what legitimately differs between two independent servers.
#[derive(Default)]
struct Names {
    /// Known ids and unnamed UUIDs, with their placeholders.
    ids: Vec<(String, String)>,
    unnamed: usize,
    /// Times read before the first job: the setup's wall clock.
    setup_times: BTreeSet<String>,
    setup_over: bool,
}

impl Names {
    fn name(&mut self, id: &str, label: &str) {
        self.ids.push((id.to_owned(), format!("<{label}>")));
    }

    fn setup_over(&mut self) {
        self.setup_over = true;
    }

    /// A response body: JSON, normalized; other text, normalized as text.
    fn body(&mut self, bytes: &[u8]) -> Value {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => self.value(value),
            Err(_) => Value::String(self.text(&String::from_utf8_lossy(bytes))),
        }
    }

    fn value(&mut self, value: Value) -> Value {
        match value {
            Value::Object(map) => self.object(map),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.value(v)).collect()),
            Value::String(s) => self.string(&s),
            other => other,
        }
    }

    fn object(&mut self, mut map: Map<String, Value>) -> Value {
        if map.contains_key("payloadType") && map.contains_key("signatures") {
            return self.envelope(map);
        }
        if map.contains_key("hashes") {
            // A proof: its hashes cover signed bytes (ids, noise, signatures).
            for key in ["root_hash", "hashes"] {
                if let Some(v) = map.get_mut(key) {
                    *v = hashed(v);
                }
            }
        }
        if ["samples", "usage", "metrics", "release"]
            .iter()
            .all(|k| map.contains_key(*k))
        {
            mask_noised(&mut map);
        }
        Value::Object(
            map.into_iter()
                .map(|(k, v)| (self.text(&k), self.value(v)))
                .collect(),
        )
    }

    /// A DSSE envelope with its payload decoded and normalized and its signatures named.
    fn envelope(&mut self, map: Map<String, Value>) -> Value {
        let payload = map["payload"]
            .as_str()
            .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .map_or(Value::Null, |p| self.value(p));
        let signatures: Vec<Value> = map["signatures"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|sig| {
                json!({
                    "keyid": self.text(sig["keyid"].as_str().unwrap_or_default()),
                    "sig": "<signature>",
                })
            })
            .collect();
        json!({
            "payloadType": map["payloadType"],
            "payload (decoded)": payload,
            "signatures": signatures,
        })
    }

    /// A string: an envelope (as JSON text, or base64 of it, as log entries carry it), a
    /// setup time, or text with ids in it.
    fn string(&mut self, s: &str) -> Value {
        let embedded = serde_json::from_str::<Value>(s).ok().or_else(|| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        });
        if let Some(Value::Object(map)) = embedded
            && map.contains_key("payloadType")
        {
            return self.envelope(map);
        }
        if is_timestamp(s) {
            // Unnumbered: two of them may fall on the same millisecond in one world only.
            if !self.setup_over {
                self.setup_times.insert(s.to_owned());
            }
            if self.setup_times.contains(s) {
                return json!("<setup time>");
            }
        }
        Value::String(self.text(s))
    }

    /// Text with ids named, a checkpoint's root and signatures masked, a PEM key masked.
    fn text(&mut self, s: &str) -> String {
        if s.starts_with("-----BEGIN PUBLIC KEY-----") {
            return "<public key>".into();
        }
        let mut text = s.to_owned();
        if let Some(checkpoint) = checkpoint_masked(&text) {
            text = checkpoint;
        }
        for (id, placeholder) in &self.ids {
            text = text.replace(id.as_str(), placeholder);
        }
        // Any UUID not named yet, in order of appearance.
        while let Some(at) = find_uuid(&text) {
            let id = text[at..at + 36].to_owned();
            self.unnamed += 1;
            let placeholder = format!("<uuid {}>", self.unnamed);
            self.ids.push((id.clone(), placeholder.clone()));
            text = text.replace(&id, &placeholder);
        }
        text
    }
}

/// Every noised figure of a report or result predicate masked: sample counts but `total`,
/// usage, the metrics and which of them were withheld. Their distribution is tested apart.
fn mask_noised(map: &mut Map<String, Value>) {
    if let Some(Value::Object(samples)) = map.get_mut("samples") {
        for (key, value) in samples.iter_mut() {
            if key != "total" {
                *value = masked(value);
            }
        }
    }
    if let Some(usage) = map.get_mut("usage") {
        *usage = masked(usage);
    }
    if let Some(metrics) = map.get_mut("metrics") {
        *metrics = json!("<noised>");
    }
    // Which metrics were withheld follows from their noised counts; the list is left out
    // when empty, so its presence is noised too.
    if let Some(Value::Object(release)) = map.get_mut("release") {
        release.insert("withheld_metrics".into(), json!("<noised>"));
    }
}

fn masked(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), masked(v))).collect())
        }
        _ => json!("<noised>"),
    }
}

fn hashed(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|_| json!("<hash>")).collect()),
        _ => json!("<hash>"),
    }
}

/// A C2SP checkpoint (origin, size, root hash, blank line, signature lines) with its root
/// hash and signatures masked; `None` for other text.
fn checkpoint_masked(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let size_line = lines.get(1)?;
    if lines.len() < 5 || size_line.parse::<u64>().is_err() || !lines[3].is_empty() {
        return None;
    }
    let mut out = vec![
        lines[0].to_owned(),
        lines[1].to_owned(),
        "<root hash>".into(),
        String::new(),
    ];
    for line in &lines[4..] {
        let signer = line.rsplit_once(' ').map_or(*line, |(signer, _)| signer);
        out.push(format!("{signer} <signature>"));
    }
    Some(out.join("\n") + "\n")
}

/// RFC 3339 as the API prints it: `2030-01-01T00:00:00.000Z` and the like.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b.len() <= 40
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[..4].iter().all(u8::is_ascii_digit)
}

/// Where the first hyphenated UUID in `text` starts.
fn find_uuid(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(35)).find(|&at| {
        b[at..at + 36].iter().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
    })
}

/// Reports every difference between the two worlds' transcripts.
fn compare(a: &[Seen], b: &[Seen], problems: &mut Vec<String>) {
    if a.len() != b.len() {
        problems.push(format!(
            "the worlds gave {} and {} responses",
            a.len(),
            b.len()
        ));
    }
    for (one, other) in a.iter().zip(b) {
        if one.what != other.what {
            problems.push(format!("out of step: {} vs {}", one.what, other.what));
            return;
        }
        if (one.status, &one.content_type) != (other.status, &other.content_type) {
            problems.push(format!(
                "{}: status {} {} vs {} {}",
                one.what, one.status, one.content_type, other.status, other.content_type
            ));
        }
        let mut differences = Vec::new();
        diff(&one.body, &other.body, String::new(), &mut differences);
        for d in differences {
            problems.push(format!("{}: {d}", one.what));
        }
    }
}

fn diff(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let here = format!("{path}.{key}");
                match (x.get(key), y.get(key)) {
                    (Some(v), Some(w)) => diff(v, w, here, out),
                    (v, w) => out.push(format!("{here}: {v:?} vs {w:?}")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff(v, w, format!("{path}[{i}]"), out);
            }
        }
        (Value::String(x), Value::String(y)) if x.contains('\n') || y.contains('\n') => {
            for (i, (v, w)) in x.lines().zip(y.lines()).enumerate() {
                if v != w {
                    out.push(format!("{path} line {}: {v:?} vs {w:?}", i + 1));
                }
            }
            if x.lines().count() != y.lines().count() {
                out.push(format!(
                    "{path}: {} vs {} lines",
                    x.lines().count(),
                    y.lines().count()
                ));
            }
        }
        _ if a != b => out.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}

/// A fixed-seed generator (SplitMix64): the reference's noise and the transform's
/// randomization, reproducible.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Whether the service's noised figures in `world` are draws of the release of `truth`.
///
/// Each observed figure `x` becomes `u = F(x-) + V·(F(x) - F(x-))` under the distribution
/// `F` the release states for it, with `V` uniform: `u` is uniform on [0, 1] exactly when `x`
/// is a draw of `F`, atoms (counts clamped to 0 or to their cap) included.
///
/// - The outcome counts, usage and each metric's n are each the truth plus discrete Laplace
///   noise at the scale `release.noise` states, clamped to `[0, cap]` (the total; usage's
///   worst case): `F` is exact. A metric withheld for its noised n tells only that n was below
///   `min_samples`, and is transformed as that event. These draws are independent, so their
///   `u`s are pooled and tested for uniformity with Kolmogorov-Smirnov at [`ALPHA`] (many
///   small departures), and each against `ALPHA / figures` (one far in a tail).
/// - The means come from noised sums over noised counts: `F` is the empirical distribution of
///   [`REFERENCE_DRAWS`] draws of `proctor_core::release` of the truth, and the means' `u`s,
///   one per metric and job, get the Kolmogorov-Smirnov test.
///
/// Figures released without noise sit on their distribution's median; a scale that moved
/// with the answers, or an outcome the answers' timing changed, puts figures in the tails;
/// either fails.
fn noise_agrees(world: &World, truth: &Truth) -> Vec<String> {
    let mut problems = Vec::new();
    let mut rng = SplitMix(0x5eed);
    let total = truth.tally.total();
    let counts = serde_json::to_value(truth.tally.counts()).unwrap_or_default();
    let caps = proctor_core::release::usage_caps(&world.policy, total);
    let min_samples = world.policy.release.min_samples as f64;
    let mut exact = Vec::new();
    for (k, report) in world.reports.iter().enumerate() {
        eprintln!(
            "job {k}: ok {}, {} {}",
            report["samples"]["ok"], report["release"]["status"], report["metrics"]
        );
        let scale = |name: &str| report["release"]["noise"][name].as_f64();
        let mut figures: Vec<(String, Value, u64, u64, Option<f64>)> = Vec::new();
        for (name, truth_count) in counts_of(&counts) {
            let seen = pointer(&report["samples"], &name);
            figures.push((
                format!("samples.{name}"),
                seen,
                truth_count,
                total,
                scale("samples"),
            ));
        }
        let usage = [
            ("queries", truth.usage.queries, caps.queries),
            ("input_tokens", truth.usage.input_tokens, caps.input_tokens),
            (
                "output_tokens",
                truth.usage.output_tokens,
                caps.output_tokens,
            ),
        ];
        for (name, truth_usage, cap) in usage {
            let key = format!("usage.{name}");
            let seen = report["usage"][name].clone();
            figures.push((key.clone(), seen, truth_usage.min(cap), cap, scale(&key)));
        }
        let released = report["release"]["status"] == "released";
        for (spec, acc) in world.specs.iter().zip(&truth.accumulators) {
            let key = format!("metrics.{}.n", spec.name);
            if released {
                let seen = report["metrics"][&spec.name]["n"].clone();
                figures.push((key.clone(), seen, acc.n, total, scale(&key)));
            }
        }
        for (name, seen, truth, cap, t) in figures {
            let Some(t) = t else {
                problems.push(format!("job {k}: no noise scale stated for {name}"));
                continue;
            };
            let cdf = |x: f64| clamped_laplace_cdf(x, truth as f64, t, cap as f64);
            let v = rng.unit();
            let u = match seen.as_f64() {
                Some(x) => cdf(x - 1.0) + v * (cdf(x) - cdf(x - 1.0)),
                // A metric left out for its noised n: the event n < min_samples.
                None if name.starts_with("metrics.") => v * cdf(min_samples - 1.0),
                None => {
                    problems.push(format!("job {k}: {name} is missing"));
                    continue;
                }
            };
            exact.push((format!("job {k} {name}"), seen.as_f64().unwrap_or(-1.0), u));
        }
    }

    let mut reference: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..REFERENCE_DRAWS {
        let released = proctor_core::release(
            &world.policy,
            &world.specs,
            &truth.accumulators,
            &truth.tally,
            truth.usage,
            &mut || rng.next(),
        );
        let value = serde_json::to_value(&released).unwrap_or_default();
        for (name, x) in means(&value, &world.specs) {
            reference.entry(name).or_default().push(x);
        }
    }
    for draws in reference.values_mut() {
        draws.sort_by(f64::total_cmp);
    }
    let mut observed_means = Vec::new();
    for (k, report) in world.reports.iter().enumerate() {
        for (name, x) in means(report, &world.specs) {
            let Some(draws) = reference.get(&name).filter(|d| !d.is_empty()) else {
                problems.push(format!("{name} is not in the reference release"));
                continue;
            };
            let below = draws.partition_point(|d| *d < x) as f64;
            let upto = draws.partition_point(|d| *d <= x) as f64;
            let u = (below + rng.unit() * (upto - below)) / draws.len() as f64;
            observed_means.push((format!("job {k} {name}"), x, u));
        }
    }

    for (pool, figures, tails) in [
        ("counts, usage and n", &exact, true),
        ("means", &observed_means, false),
    ] {
        let (d, critical) = kolmogorov_smirnov(figures);
        eprintln!(
            "{pool}: {} figures, KS D = {d:.3} (critical {critical:.3} at {ALPHA})",
            figures.len()
        );
        if d > critical {
            problems.push(format!(
                "the noised {pool} are not draws of the stated release of what the samples \
                 did: KS D = {d:.3} > {critical:.3}"
            ));
        }
        if tails {
            let bound = ALPHA / figures.len().max(1) as f64;
            for (name, x, u) in figures.iter() {
                if 2.0 * u.min(1.0 - u) < bound {
                    problems.push(format!(
                        "{name} = {x} is far in the tail of its stated release (u = {u:.2e})"
                    ));
                }
            }
        }
    }
    problems
}

/// The twelve outcome counts, flattened (`ok`, `failed.<kind>`, `trapped.<kind>`), with
/// the truth's value of each.
fn counts_of(counts: &Value) -> Vec<(String, u64)> {
    let mut out = vec![("ok".to_owned(), counts["ok"].as_u64().unwrap_or(0))];
    for group in ["failed", "trapped"] {
        for (kind, n) in counts[group].as_object().into_iter().flatten() {
            out.push((format!("{group}.{kind}"), n.as_u64().unwrap_or(0)));
        }
    }
    out
}

/// The value at a dotted path (`failed.memory`).
fn pointer(value: &Value, dotted: &str) -> Value {
    value
        .pointer(&format!("/{}", dotted.replace('.', "/")))
        .cloned()
        .unwrap_or(Value::Null)
}

/// `P(X ≤ x)` for `X = clamp(truth + L, 0, cap)`, `L` discrete Laplace at scale `t`:
/// `P(L = k) = (1 - q) / (1 + q) · q^|k|` with `q = exp(-1/t)`, so `P(L ≤ k)` is
/// `1 - q^(k+1) / (1 + q)` for `k ≥ 0` and `q^-k / (1 + q)` below.
fn clamped_laplace_cdf(x: f64, truth: f64, t: f64, cap: f64) -> f64 {
    if x < 0.0 {
        return 0.0;
    }
    if x >= cap {
        return 1.0;
    }
    let k = x - truth;
    let q = (-1.0 / t).exp();
    if k >= 0.0 {
        1.0 - q.powf(k + 1.0) / (1.0 + q)
    } else {
        q.powf(-k) / (1.0 + q)
    }
}

/// Each metric's released mean (-1 when withheld or null).
fn means(report: &Value, specs: &[MetricSpec]) -> Vec<(String, f64)> {
    specs
        .iter()
        .map(|spec| {
            let mean = report["metrics"][&spec.name]["mean"].as_f64();
            (format!("metrics.{}.mean", spec.name), mean.unwrap_or(-1.0))
        })
        .collect()
}

/// The Kolmogorov-Smirnov distance of the `u`s from the uniform distribution, and its
/// critical value at [`ALPHA`] (the asymptotic `sqrt(ln(2/α) / 2n)`, conservative here).
fn kolmogorov_smirnov(figures: &[(String, f64, f64)]) -> (f64, f64) {
    let mut us: Vec<f64> = figures.iter().map(|(_, _, u)| *u).collect();
    us.sort_by(f64::total_cmp);
    let n = us.len() as f64;
    let d = us
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let i = i as f64;
            ((i + 1.0) / n - u).max(u - i / n)
        })
        .fold(0.0, f64::max);
    (d, ((2.0 / ALPHA).ln() / (2.0 * n)).sqrt())
}
