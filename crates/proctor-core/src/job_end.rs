//! How a job ends: one [`JobEnd`], which the store writes, the attestation states and the
//! service shows, so the four ways a job can end (`succeeded`, `failed`, `cancelled`,
//! `revoked`) and what each carries are said once.
//!
//! Whatever a job's end says is host-written: a [`Reason`] from a fixed set, never an error's
//! or a panic's text (either may quote what a guest or a model said). The one exception is a
//! job its vendor rejected before it ran, which carries the vendor's words; no model output
//! existed yet, so they tell its evaluator nothing of one.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::release::{ReleaseStatus, Usage};
use crate::report::RunReport;

/// A job's final status: what its row, its view and its result statement say (`succeeded`,
/// `failed`, `cancelled`, `revoked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndStatus {
    /// It ran to its end (whatever its samples did, and whether or not some queries were
    /// refused).
    Succeeded,
    /// It could not run to its end, or its release was withheld.
    Failed,
    /// Its evaluator cancelled it, or its vendor rejected it.
    Cancelled,
    /// Its grant was revoked.
    Revoked,
}

impl EndStatus {
    /// The status's name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            EndStatus::Succeeded => "succeeded",
            EndStatus::Failed => "failed",
            EndStatus::Cancelled => "cancelled",
            EndStatus::Revoked => "revoked",
        }
    }
}

impl fmt::Display for EndStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job ended as it did, when it did not simply succeed. Each has one fixed, host-written
/// text, which the job's row, its view and its result statement carry: so nothing a guest or
/// a panic chose reaches anyone, and a job's end shows one of `Reason::ALL.len() + 1` values
/// ([`crate::leakage::VISIBLE_ENDINGS`]). The details (which budget, which error) go to the
/// service's log, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// It ran to its end, but some queries were refused: the grant's budget ran out, or the
    /// grant stopped covering the job, while it ran.
    BudgetRanOut,
    /// It ran to its end and its release was withheld (its report says why).
    Withheld,
    /// Both of the above.
    WithheldBudgetRanOut,
    /// It could not be set up: the sandbox, the dataset or the model's configuration refused.
    Setup,
    /// The service could not run it to its end: an internal error, a panic, or every
    /// attempt's worker died.
    Internal,
    /// Its samples used more CPU time than its grant's `cpu_seconds_per_job`, and it was
    /// stopped there.
    CpuBudget,
    /// Its evaluator cancelled it.
    Cancelled,
    /// The service's operator (an admin) cancelled it.
    Operator,
    /// Its vendor revoked the grant.
    Revoked,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 9] = [
        Reason::BudgetRanOut,
        Reason::Withheld,
        Reason::WithheldBudgetRanOut,
        Reason::Setup,
        Reason::Internal,
        Reason::CpuBudget,
        Reason::Cancelled,
        Reason::Operator,
        Reason::Revoked,
    ];

    /// The reason whose [`Reason::text`] is `text`: a running job flagged to stop carries
    /// its canceller's text until its worker ends it.
    pub fn of_text(text: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.text() == text)
    }

    /// The text the job's row, view and result statement carry.
    pub fn text(self) -> &'static str {
        match self {
            Reason::BudgetRanOut => {
                "the grant's budget ran out, or the grant stopped covering the job, while it ran \
                 (the grant's budget view says which)"
            }
            Reason::Withheld => "the release was withheld under the policy's release rules",
            Reason::WithheldBudgetRanOut => {
                "the release was withheld under the policy's release rules; the grant's budget \
                 ran out, or the grant stopped covering the job, while it ran"
            }
            Reason::Setup => {
                "the job could not be set up: its eval, dataset or model configuration was refused"
            }
            Reason::Internal => "the service could not run the job to its end",
            Reason::CpuBudget => {
                "the job's samples used more CPU time than the grant's CPU seconds per job, and \
                 it was stopped there"
            }
            Reason::Cancelled => "cancelled by its evaluator",
            Reason::Operator => "cancelled by the service's operator",
            // The store flags a running job with the same text when its grant is revoked.
            Reason::Revoked => "the vendor revoked the grant",
        }
    }

    /// The status a job ending for this reason has.
    pub fn status(self) -> EndStatus {
        match self {
            Reason::BudgetRanOut => EndStatus::Succeeded,
            Reason::Withheld
            | Reason::WithheldBudgetRanOut
            | Reason::Setup
            | Reason::Internal
            | Reason::CpuBudget => EndStatus::Failed,
            Reason::Cancelled | Reason::Operator => EndStatus::Cancelled,
            Reason::Revoked => EndStatus::Revoked,
        }
    }
}

/// How a job ended, with what each end carries: the report of a job that ran to its end, or
/// the usage of one that stopped before it.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEnd {
    /// It ran to its end and its figures were released.
    Succeeded {
        /// The report (aggregates only).
        report: Box<RunReport>,
        /// The grant refused some of its queries while it ran ([`Reason::BudgetRanOut`]).
        budget_ran_out: bool,
    },
    /// It could not run to its end, or its release was withheld.
    Failed(Failure),
    /// Its evaluator cancelled it, or its vendor rejected it before it ran.
    Cancelled(Cancellation),
    /// Its grant was revoked: nothing of it is released ([`Reason::Revoked`]).
    Revoked {
        /// What the vendor was billed before it ended.
        usage: Usage,
    },
}

/// Why a job [failed](JobEnd::Failed).
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// It ran to its end and its release was withheld; the report is kept, so the attestation
    /// shows the counts ([`Reason::Withheld`], [`Reason::WithheldBudgetRanOut`]).
    Withheld {
        /// The report, figures withheld.
        report: Box<RunReport>,
        /// The grant refused some of its queries while it ran.
        budget_ran_out: bool,
    },
    /// It could not be set up ([`Reason::Setup`]).
    Setup {
        /// What the vendor was billed before it ended.
        usage: Usage,
    },
    /// The service could not run it to its end ([`Reason::Internal`]).
    Internal {
        /// What the vendor was billed before it ended.
        usage: Usage,
    },
    /// Its samples passed the grant's CPU seconds per job ([`Reason::CpuBudget`]).
    CpuBudget {
        /// What the vendor was billed before it ended.
        usage: Usage,
    },
}

/// Who [cancelled](JobEnd::Cancelled) a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancellation {
    /// Its evaluator ([`Reason::Cancelled`]).
    ByEvaluator {
        /// What the vendor was billed before it ended.
        usage: Usage,
    },
    /// The service's operator ([`Reason::Operator`]).
    ByOperator {
        /// What the vendor was billed before it ended.
        usage: Usage,
    },
    /// Its vendor, rejecting it while it waited for approval: it never ran.
    Rejected {
        /// The vendor's reason, one line.
        reason: String,
    },
}

impl JobEnd {
    /// A job that ran to its end: `succeeded`, or `failed` when its release was withheld;
    /// `budget_ran_out` when the grant refused some of its queries.
    pub fn ran(report: RunReport, budget_ran_out: bool) -> JobEnd {
        let report = Box::new(report);
        match report.release.status {
            ReleaseStatus::Released => JobEnd::Succeeded {
                report,
                budget_ran_out,
            },
            ReleaseStatus::Withheld => JobEnd::Failed(Failure::Withheld {
                report,
                budget_ran_out,
            }),
        }
    }

    /// A job that could not be set up, with the usage it had consumed.
    pub fn setup_refused(usage: Usage) -> JobEnd {
        JobEnd::Failed(Failure::Setup { usage })
    }

    /// A job the service could not run to its end, with the usage it had consumed.
    pub fn internal(usage: Usage) -> JobEnd {
        JobEnd::Failed(Failure::Internal { usage })
    }

    /// A job stopped when its samples passed its grant's CPU seconds per job, with the usage
    /// it had consumed.
    pub fn cpu_budget_spent(usage: Usage) -> JobEnd {
        JobEnd::Failed(Failure::CpuBudget { usage })
    }

    /// A job its evaluator cancelled, with the usage it had consumed.
    pub fn cancelled(usage: Usage) -> JobEnd {
        JobEnd::Cancelled(Cancellation::ByEvaluator { usage })
    }

    /// A job the service's operator cancelled, with the usage it had consumed.
    pub fn operator_cancelled(usage: Usage) -> JobEnd {
        JobEnd::Cancelled(Cancellation::ByOperator { usage })
    }

    /// A job its vendor rejected before it ran, for `reason`.
    pub fn rejected(reason: impl Into<String>) -> JobEnd {
        JobEnd::Cancelled(Cancellation::Rejected {
            reason: reason.into(),
        })
    }

    /// A job whose grant was revoked, with the usage it had consumed.
    pub fn revoked(usage: Usage) -> JobEnd {
        JobEnd::Revoked { usage }
    }

    /// The final status.
    pub fn status(&self) -> EndStatus {
        match self {
            JobEnd::Succeeded { .. } => EndStatus::Succeeded,
            JobEnd::Failed(_) => EndStatus::Failed,
            JobEnd::Cancelled(_) => EndStatus::Cancelled,
            JobEnd::Revoked { .. } => EndStatus::Revoked,
        }
    }

    /// The fixed reason, if any: `None` for a plain success and for a vendor's rejection
    /// (whose reason is the vendor's, [`JobEnd::reason_text`]).
    pub fn reason(&self) -> Option<Reason> {
        match self {
            JobEnd::Succeeded {
                budget_ran_out: false,
                ..
            } => None,
            JobEnd::Succeeded {
                budget_ran_out: true,
                ..
            } => Some(Reason::BudgetRanOut),
            JobEnd::Failed(Failure::Withheld {
                budget_ran_out: false,
                ..
            }) => Some(Reason::Withheld),
            JobEnd::Failed(Failure::Withheld {
                budget_ran_out: true,
                ..
            }) => Some(Reason::WithheldBudgetRanOut),
            JobEnd::Failed(Failure::Setup { .. }) => Some(Reason::Setup),
            JobEnd::Failed(Failure::Internal { .. }) => Some(Reason::Internal),
            JobEnd::Failed(Failure::CpuBudget { .. }) => Some(Reason::CpuBudget),
            JobEnd::Cancelled(Cancellation::ByEvaluator { .. }) => Some(Reason::Cancelled),
            JobEnd::Cancelled(Cancellation::ByOperator { .. }) => Some(Reason::Operator),
            JobEnd::Cancelled(Cancellation::Rejected { .. }) => None,
            JobEnd::Revoked { .. } => Some(Reason::Revoked),
        }
    }

    /// The text the job's row, view and result statement carry as its reason.
    pub fn reason_text(&self) -> Option<Cow<'static, str>> {
        match self {
            JobEnd::Cancelled(Cancellation::Rejected { reason }) => {
                Some(Cow::Owned(format!("the vendor rejected the job: {reason}")))
            }
            end => end.reason().map(|r| Cow::Borrowed(r.text())),
        }
    }

    /// The report of a job that ran to its end.
    pub fn report(&self) -> Option<&RunReport> {
        match self {
            JobEnd::Succeeded { report, .. } | JobEnd::Failed(Failure::Withheld { report, .. }) => {
                Some(report)
            }
            _ => None,
        }
    }

    /// The report as the job's row stores it (JSON text), if it ran to its end.
    ///
    /// # Errors
    ///
    /// When the report does not serialize (it always does: its maps have string keys).
    pub fn report_json(&self) -> Result<Option<String>, serde_json::Error> {
        self.report().map(serde_json::to_string).transpose()
    }

    /// The usage of a job that stopped before its end (a report carries its own), for
    /// noising before it is attested.
    pub fn stopped_usage_mut(&mut self) -> Option<&mut Usage> {
        match self {
            JobEnd::Failed(
                Failure::Setup { usage }
                | Failure::Internal { usage }
                | Failure::CpuBudget { usage },
            )
            | JobEnd::Cancelled(
                Cancellation::ByEvaluator { usage } | Cancellation::ByOperator { usage },
            )
            | JobEnd::Revoked { usage } => Some(usage),
            JobEnd::Succeeded { .. }
            | JobEnd::Failed(Failure::Withheld { .. })
            | JobEnd::Cancelled(Cancellation::Rejected { .. }) => None,
        }
    }

    /// What the vendor was billed: the report's usage, or what the job had consumed when it
    /// stopped (nothing, for a job that never ran).
    pub fn usage(&self) -> Usage {
        match self {
            JobEnd::Succeeded { report, .. } | JobEnd::Failed(Failure::Withheld { report, .. }) => {
                report.usage
            }
            JobEnd::Failed(
                Failure::Setup { usage }
                | Failure::Internal { usage }
                | Failure::CpuBudget { usage },
            )
            | JobEnd::Cancelled(
                Cancellation::ByEvaluator { usage } | Cancellation::ByOperator { usage },
            )
            | JobEnd::Revoked { usage } => *usage,
            JobEnd::Cancelled(Cancellation::Rejected { .. }) => Usage::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jobs_end_shows_one_of_as_many_values_as_the_leakage_bound_counts() {
        // Succeeded without a reason, and one (status, text) per reason.
        let mut endings: Vec<(EndStatus, &str)> =
            Reason::ALL.iter().map(|r| (r.status(), r.text())).collect();
        endings.push((EndStatus::Succeeded, ""));
        endings.sort();
        endings.dedup();
        assert_eq!(endings.len(), crate::leakage::VISIBLE_ENDINGS as usize);
    }

    #[test]
    fn every_fixed_reason_is_the_reason_of_the_end_of_its_status() {
        let usage = Usage::default();
        let ends = [
            JobEnd::setup_refused(usage),
            JobEnd::internal(usage),
            JobEnd::cpu_budget_spent(usage),
            JobEnd::cancelled(usage),
            JobEnd::revoked(usage),
        ];
        for end in ends {
            let reason = end.reason().expect("a stopped job has a fixed reason");
            assert_eq!(reason.status(), end.status());
            assert_eq!(end.reason_text().as_deref(), Some(reason.text()));
        }
    }

    #[test]
    fn a_rejected_job_is_cancelled_with_its_vendors_words() {
        let end = JobEnd::rejected("not this week");
        assert_eq!(end.status(), EndStatus::Cancelled);
        assert_eq!(end.reason(), None);
        assert_eq!(
            end.reason_text().as_deref(),
            Some("the vendor rejected the job: not this week")
        );
        assert_eq!(end.usage(), Usage::default());
    }
}
