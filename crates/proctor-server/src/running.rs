//! The jobs this process is running, by id, so that a revocation handled here stops them at
//! once; jobs running on other servers stop at their next model query (the grant refuses it)
//! or at their next lease renewal (the job is flagged).

use std::collections::HashMap;
use std::sync::Mutex;

use proctor_sandbox::CancellationToken;
use proctor_store::JobId;

/// Cancellation tokens of the jobs running in this process.
#[derive(Debug, Default)]
pub struct RunningJobs {
    jobs: Mutex<HashMap<JobId, CancellationToken>>,
}

impl RunningJobs {
    /// Registers a job while it runs; it is removed when the returned guard drops.
    pub fn register(&self, job: JobId, cancel: CancellationToken) -> Registered<'_> {
        self.lock().insert(job, cancel);
        Registered { jobs: self, job }
    }

    /// Stops `job` if it runs here; returns whether it did.
    pub fn stop(&self, job: JobId) -> bool {
        match self.lock().get(&job) {
            Some(cancel) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, CancellationToken>> {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Keeps a job registered until dropped.
pub struct Registered<'a> {
    jobs: &'a RunningJobs,
    job: JobId,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.jobs.lock().remove(&self.job);
    }
}
