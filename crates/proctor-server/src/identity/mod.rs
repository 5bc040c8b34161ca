//! Model identity canaries (issue 16, item 1): is the model that answers a job the one its
//! vendor registered?
//!
//! - **Enrollment**, when a model is registered ([`enroll`]): a fresh 32-byte probe secret
//!   from the OS CSPRNG, sealed with the credential key (bound to the model's owner and name)
//!   and stored; the fingerprint is then measured in the background ([`measure`]), the model's
//!   identity reading `fingerprinting` until it is `ready` (or `unstable`, or `failed` and
//!   measured again later). What measuring costs: at most
//!   [`MAX_REGISTRATION_QUERIES`](proctor_core::identity_probes::MAX_REGISTRATION_QUERIES)
//!   queries, one after the other, so about 416 times the endpoint's latency; registration
//!   itself returns at once.
//! - **Checks**: a job on a model with a ready fingerprint sends every probe once right
//!   before its first sample and once right after its last ([`JobChecks`]), through the very
//!   adapter instance its samples use (its connection pool, concurrency limit and request
//!   shape), but not through the job's meter: probe queries are the service's own, no grant
//!   pays for them and no evaluator's usage counts them (the vendor sees them per check in
//!   [`route`]). A model is also checked on a schedule ([`spawn`]).
//! - **What is kept**: each check's figures in `identity_checks`; the job's result states
//!   the test of both checks together (`proctor_core::identity`), a function of the mismatch
//!   count alone, and its leakage bound counts that channel.
//!
//! No probe text and no answer is stored or logged anywhere: the text is regenerated from the
//! secret when a probe is sent, and an answer is compared by its keyed hash.

pub mod alerts;
pub mod route;

use std::sync::Arc;
use std::time::Duration;

use proctor_core::identity::CheckCounts;
use proctor_core::identity_probes::{self, Fingerprint, ProbeSecret};
use proctor_core::leakage::IDENTITY_CHANNEL;
use proctor_core::{Leakage, Model, ModelError, ModelIdentity, RunReport};
use proctor_models::{Credential, ModelConfig};
use proctor_sandbox::CancellationToken;
use proctor_store::{
    CheckKind, FingerprintState, Job, JobId, Model as StoredModel, ModelId, StoreError,
};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::attest::PreRegistration;
use crate::sealing::{SealError, model_context};
use crate::state::App;

/// How the service runs identity canaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Whether models are fingerprinted at registration and jobs checked.
    pub enabled: bool,
    /// How long a model with a ready fingerprint goes unchecked before a scheduled check.
    pub check_every: Duration,
    /// How often the background task looks for fingerprints to measure and checks due.
    pub poll: Duration,
    /// A measurement claimed this long ago (its server died), or failed this long ago, is
    /// taken up again.
    pub stale: Duration,
}

impl Default for IdentityConfig {
    fn default() -> IdentityConfig {
        IdentityConfig {
            enabled: true,
            check_every: Duration::from_secs(3600),
            poll: Duration::from_secs(30),
            stale: Duration::from_secs(600),
        }
    }
}

/// Why an identity step did not complete. Never carries a probe's text or an answer.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The secret or the credential does not open with this server's key.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The random source failed.
    #[error("the random source failed")]
    Random,
    /// The stored configuration does not build.
    #[error("the model does not build: {0}")]
    Build(String),
    /// A probe query failed.
    #[error("a probe query failed: {0}")]
    Model(#[from] ModelError),
}

/// The associated data that binds a sealed probe secret to its model.
fn secret_context(model: &StoredModel) -> String {
    format!(
        "proctor model identity secret v1\n{}\n{}",
        model.owner, model.name
    )
}

/// Enrolls a just-registered model and measures its fingerprint in the background.
///
/// # Errors
///
/// The random source, sealing or the store failed: the model stays registered, unenrolled.
pub async fn enroll(app: &Arc<App>, model: &StoredModel) -> Result<(), IdentityError> {
    if !app.config.identity.enabled {
        return Ok(());
    }
    let mut secret = [0u8; 32];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| IdentityError::Random)?;
    let sealed = app
        .sealer
        .seal(&secret_context(model), &secret)
        .map_err(IdentityError::Seal)?;
    app.store.enroll_fingerprint(model.id, &sealed).await?;
    let (app, id) = (app.clone(), model.id);
    tokio::spawn(async move {
        let worker = format!("registration-{}", uuid::Uuid::new_v4().simple());
        if let Err(err) = measure(&app, &worker, Some(id)).await {
            warn!(%err, model = %id, "measuring a fingerprint failed");
        }
    });
    Ok(())
}

/// Builds `model` as a job would, with its opened credential.
async fn build(app: &App, model: &StoredModel, seed: u64) -> Result<Arc<dyn Model>, IdentityError> {
    let config: ModelConfig =
        serde_json::from_str(&model.config).map_err(|e| IdentityError::Build(e.to_string()))?;
    let credential = match app.store.model_credential(model.id).await? {
        Some(sealed) => {
            let plain = app
                .sealer
                .open(&model_context(&model.owner, &model.name), &sealed)?;
            let text = String::from_utf8(plain).map_err(|e| IdentityError::Build(e.to_string()))?;
            Some(Credential::new(text))
        }
        None => None,
    };
    app.config
        .models
        .build(&config, credential, seed, &app.config.model_hosts)
        .map_err(|e| IdentityError::Build(e.to_string()))
}

fn secret_of(app: &App, model: &StoredModel, sealed: &[u8]) -> Result<ProbeSecret, IdentityError> {
    let plain = app.sealer.open(&secret_context(model), sealed)?;
    let bytes: [u8; 32] = plain.try_into().map_err(|_| SealError::Open)?;
    Ok(ProbeSecret::from_bytes(bytes))
}

/// Claims a fingerprint to measure (`only` that model's, else any claimable) and measures
/// it. Returns whether one was claimed.
///
/// # Errors
///
/// The store, the secret or the model's build failed; a failed probe query is no error (the
/// fingerprint is `failed`, measured again after [`IdentityConfig::stale`]).
pub async fn measure(
    app: &App,
    worker: &str,
    only: Option<ModelId>,
) -> Result<bool, IdentityError> {
    let stale = app.config.identity.stale;
    let Some((id, sealed)) = app.store.claim_fingerprint(worker, only, stale).await? else {
        return Ok(false);
    };
    let model = app.store.model(id).await?;
    let secret = secret_of(app, &model, &sealed)?;
    let built = build(app, &model, 0).await?;
    let started = std::time::Instant::now();
    let (state, measured) = match identity_probes::fingerprint(built.as_ref(), &secret).await {
        Ok(f) if f.usable() => (FingerprintState::Ready, Some(f)),
        Ok(f) => (FingerprintState::Unstable, Some(f)),
        Err(err) => {
            warn!(%err, model = %id, "a probe query failed while fingerprinting");
            (FingerprintState::Failed, None)
        }
    };
    // A failed attempt's queries are not known exactly; the bound is what it may have sent.
    let queries = measured.as_ref().map_or(
        identity_probes::MAX_REGISTRATION_QUERIES,
        |f: &Fingerprint| f.queries,
    );
    let held = app
        .store
        .finish_fingerprint(id, worker, state, measured.as_ref(), queries)
        .await?;
    info!(
        model = %id, state = %state, queries, held,
        seconds = started.elapsed().as_secs_f64(),
        "fingerprinted a model"
    );
    Ok(true)
}

/// A model's ready fingerprint with its opened secret, if it has one.
async fn ready(
    app: &App,
    model: ModelId,
) -> Result<Option<(ProbeSecret, Fingerprint)>, IdentityError> {
    let Some(stored) = app.store.fingerprint(model).await? else {
        return Ok(None);
    };
    let (FingerprintState::Ready, Some(fingerprint)) = (stored.state, stored.fingerprint) else {
        return Ok(None);
    };
    let registered = app.store.model(model).await?;
    let secret = secret_of(app, &registered, &stored.sealed_secret)?;
    Ok(Some((secret, fingerprint)))
}

/// Sends one check through `through`, records it, and returns its counts (`None` when a
/// probe query failed: recorded `not_checked`).
async fn check(
    app: &App,
    model: ModelId,
    job: Option<JobId>,
    kind: CheckKind,
    through: &dyn Model,
    (secret, fingerprint): &(ProbeSecret, Fingerprint),
) -> Result<Option<CheckCounts>, IdentityError> {
    let rng = SystemRandom::new();
    let mut draw = || {
        let mut bytes = [0u8; 8];
        // The order only spreads probes; a failed draw leaves it as registered.
        let _ = rng.fill(&mut bytes);
        u64::from_le_bytes(bytes)
    };
    let counts = match identity_probes::check(through, secret, fingerprint, &mut draw).await {
        Ok(counts) => Some(counts),
        Err(err) => {
            warn!(%err, %model, "a probe query failed; the check is not_checked");
            None
        }
    };
    let identity = counts.map_or_else(ModelIdentity::not_checked, ModelIdentity::assess);
    app.store
        .record_identity_check(model, job, kind, &identity)
        .await?;
    Ok(counts)
}

/// A job's identity checks: the one before its first sample, then the one after its last.
pub struct JobChecks {
    model: Arc<dyn Model>,
    /// The fingerprint checked against, when the job is checked.
    plan: Option<(ProbeSecret, Fingerprint)>,
    /// The job's pre-registered bound, when it counts the identity channel.
    leakage: Option<Leakage>,
    before: Option<CheckCounts>,
}

impl JobChecks {
    /// Runs the check before `job`'s first sample, through `model` (the adapter instance its
    /// samples call, unmetered). A job is checked when the service checks identities, its
    /// pre-registered bound counts the channel, and its model's fingerprint is ready.
    pub async fn before(app: &App, job: &Job, model: Arc<dyn Model>) -> JobChecks {
        let mut checks = JobChecks {
            model,
            plan: None,
            leakage: None,
            before: None,
        };
        if !app.config.identity.enabled {
            return checks;
        }
        let leakage = match PreRegistration::of(app, job).await {
            Ok(registered) => registered.ctx.leakage,
            Err(err) => {
                warn!(%err, "reading the job's pre-registration for its identity checks failed");
                return checks;
            }
        };
        if !leakage.channels.contains_key(IDENTITY_CHANNEL) {
            return checks;
        }
        checks.leakage = Some(leakage);
        checks.plan = match ready(app, job.model).await {
            Ok(plan) => plan,
            Err(err) => {
                warn!(%err, "loading the model's fingerprint failed");
                None
            }
        };
        if let Some(plan) = &checks.plan {
            let kind = CheckKind::BeforeJob;
            match check(
                app,
                job.model,
                Some(job.id),
                kind,
                checks.model.as_ref(),
                plan,
            )
            .await
            {
                Ok(counts) => checks.before = counts,
                Err(err) => warn!(%err, "the identity check before the job failed"),
            }
        }
        checks
    }

    /// Runs the check after the job's last sample and states both in its report, with the
    /// bound it pre-registered.
    pub async fn finish(self, app: &App, job: &Job, mut report: RunReport) -> RunReport {
        let Some(leakage) = self.leakage else {
            return report;
        };
        report.leakage = leakage;
        let after = match (&self.plan, self.before) {
            (Some(plan), Some(_)) => {
                let kind = CheckKind::AfterJob;
                match check(
                    app,
                    job.model,
                    Some(job.id),
                    kind,
                    self.model.as_ref(),
                    plan,
                )
                .await
                {
                    Ok(counts) => counts,
                    Err(err) => {
                        warn!(%err, "the identity check after the job failed");
                        None
                    }
                }
            }
            _ => None,
        };
        report.model_identity = match (self.before, after) {
            (Some(before), Some(after)) => ModelIdentity::assess(before.plus(after)),
            _ => ModelIdentity::not_checked(),
        };
        report
    }
}

/// The background task of this server's identity canaries: measures fingerprints left to
/// measure (a registration's task died, or a measurement failed) and runs the scheduled
/// checks. None when identity checks are off or the server runs no workers.
pub fn spawn(app: &Arc<App>, shutdown: &CancellationToken, instance: &str) -> Vec<JoinHandle<()>> {
    if !app.config.identity.enabled || app.config.workers == 0 {
        return Vec::new();
    }
    let (app, shutdown, worker) = (
        app.clone(),
        shutdown.clone(),
        format!("{instance}-identity"),
    );
    vec![tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(app.config.identity.poll) => {}
                () = shutdown.cancelled() => return,
            }
            loop {
                match measure(&app, &worker, None).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(err) => {
                        warn!(%err, "measuring a fingerprint failed");
                        break;
                    }
                }
            }
            if let Err(err) = scheduled(&app).await {
                warn!(%err, "the scheduled identity checks failed");
            }
        }
    })]
}

/// Checks every model due a scheduled check, through a model built for the check.
async fn scheduled(app: &App) -> Result<(), IdentityError> {
    let due = app
        .store
        .models_due_for_identity_check(app.config.identity.check_every, 16)
        .await?;
    for id in due {
        let Some(plan) = ready(app, id).await? else {
            continue;
        };
        let model = app.store.model(id).await?;
        let built = build(app, &model, 0).await?;
        check(app, id, None, CheckKind::Scheduled, built.as_ref(), &plan).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
