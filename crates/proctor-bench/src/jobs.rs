//! Submitting a job and waiting for its end, as a client polling its status does.

use std::time::{Duration, Instant};

use proctor_api::jobs::{JobStatus, JobView, ResultView, SubmitJob};

use crate::client::Client;

/// How often the bench reads a job's status while it waits: often enough that the wait adds
/// little to a job of seconds, rarely enough to load the service with nothing.
const POLL: Duration = Duration::from_millis(20);

/// A job that ended, as timed from its client.
pub struct Ended {
    /// Its last view.
    pub view: JobView,
    /// From the submission's request to the first status read that showed its end.
    pub elapsed: Duration,
}

/// Submits `eval` over `dataset` against `model` as `evaluator`.
pub async fn submit(
    evaluator: &Client,
    eval: &str,
    dataset: &str,
    model: &str,
) -> anyhow::Result<JobView> {
    let body = SubmitJob {
        eval: eval.to_owned(),
        dataset: dataset.to_owned(),
        model: model.to_owned(),
        policy: None,
    };
    evaluator.post("/v1/jobs", &body).await
}

/// Submits a job and waits until it ends, or fails after `timeout`.
pub async fn run(
    evaluator: &Client,
    eval: &str,
    dataset: &str,
    model: &str,
    timeout: Duration,
) -> anyhow::Result<Ended> {
    let started = Instant::now();
    let job = submit(evaluator, eval, dataset, model).await?;
    let view = wait(evaluator, &job.id, started + timeout).await?;
    Ok(Ended {
        view,
        elapsed: started.elapsed(),
    })
}

/// Polls `job` until it has ended; fails at `deadline`.
pub async fn wait(evaluator: &Client, job: &str, deadline: Instant) -> anyhow::Result<JobView> {
    loop {
        let view: JobView = evaluator.get(&format!("/v1/jobs/{job}")).await?;
        if !matches!(view.status, JobStatus::Queued | JobStatus::Running) {
            return Ok(view);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "job {job} had not ended in time ({} of {} samples done)",
            view.progress.done.unwrap_or(0),
            view.progress.total
        );
        tokio::time::sleep(POLL).await;
    }
}

/// How many of an ended job's samples ran ok, from its released result.
pub async fn ok_samples(evaluator: &Client, job: &str) -> anyhow::Result<u64> {
    let result: ResultView = evaluator.get(&format!("/v1/jobs/{job}/result")).await?;
    Ok(result.report.map_or(0, |report| report.samples.ok))
}

/// The job's running time by the service's own clock (`started_at` to `finished_at`), when
/// both are shown.
pub fn run_time(view: &JobView) -> Option<Duration> {
    let started = humantime::parse_rfc3339(view.started_at.as_deref()?).ok()?;
    let finished = humantime::parse_rfc3339(view.finished_at.as_deref()?).ok()?;
    finished.duration_since(started).ok()
}
