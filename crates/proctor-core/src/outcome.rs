//! How a sample ended: one set of kebab-case names everywhere (JSON, database, attestation).

use serde::{Deserialize, Serialize};

/// The outcome of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// `run-sample` returned ok; only these samples contribute scores.
    Ok,
    /// The guest returned `sample-error.model-unavailable`.
    ModelUnavailable,
    /// The guest returned `sample-error.budget-exhausted`.
    BudgetExhausted,
    /// The guest returned `sample-error.invalid-item`.
    InvalidItem,
    /// The guest returned `sample-error.failed`.
    Failed,
    /// The sample used up its fuel.
    OutOfFuel,
    /// The wall-clock limit hit while wasm ran.
    Deadline,
    /// The sample timeout hit while waiting in a host call.
    Timeout,
    /// A memory or table grow past the limit.
    Memory,
    /// The wasm stack overflowed.
    StackOverflow,
    /// An undeclared metric, a non-finite score, an item index out of range.
    PolicyViolation,
    /// Any other trap (`unreachable`, guest exit, ...).
    Other,
}

impl Outcome {
    /// Every outcome, in the order of the JSON report.
    pub const ALL: [Outcome; 12] = [
        Outcome::Ok,
        Outcome::ModelUnavailable,
        Outcome::BudgetExhausted,
        Outcome::InvalidItem,
        Outcome::Failed,
        Outcome::OutOfFuel,
        Outcome::Deadline,
        Outcome::Timeout,
        Outcome::Memory,
        Outcome::StackOverflow,
        Outcome::PolicyViolation,
        Outcome::Other,
    ];

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ModelUnavailable => "model-unavailable",
            Outcome::BudgetExhausted => "budget-exhausted",
            Outcome::InvalidItem => "invalid-item",
            Outcome::Failed => "failed",
            Outcome::OutOfFuel => "out-of-fuel",
            Outcome::Deadline => "deadline",
            Outcome::Timeout => "timeout",
            Outcome::Memory => "memory",
            Outcome::StackOverflow => "stack-overflow",
            Outcome::PolicyViolation => "policy-violation",
            Outcome::Other => "other",
        }
    }

    /// The guest returned an error (as opposed to trapping).
    pub fn is_failed(self) -> bool {
        matches!(
            self,
            Outcome::ModelUnavailable
                | Outcome::BudgetExhausted
                | Outcome::InvalidItem
                | Outcome::Failed
        )
    }

    /// The sample trapped.
    pub fn is_trapped(self) -> bool {
        self != Outcome::Ok && !self.is_failed()
    }

    fn index(self) -> usize {
        Outcome::ALL.iter().position(|o| *o == self).unwrap_or(0)
    }
}

/// Failed-sample counts, by `sample-error` case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub struct FailedCounts {
    pub model_unavailable: u64,
    pub budget_exhausted: u64,
    pub invalid_item: u64,
    pub failed: u64,
}

/// Trapped-sample counts, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub struct TrappedCounts {
    pub out_of_fuel: u64,
    pub deadline: u64,
    pub timeout: u64,
    pub memory: u64,
    pub stack_overflow: u64,
    pub policy_violation: u64,
    pub other: u64,
}

/// Sample counts as the report shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SampleCounts {
    /// Samples run.
    pub total: u64,
    /// Samples that returned ok.
    pub ok: u64,
    /// Samples whose guest returned an error.
    pub failed: FailedCounts,
    /// Samples that trapped.
    pub trapped: TrappedCounts,
}

/// A tally of outcomes, indexed by [`Outcome`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeTally([u64; 12]);

impl OutcomeTally {
    /// Counts one more sample with this outcome.
    pub fn add(&mut self, outcome: Outcome) {
        self.0[outcome.index()] += 1;
    }

    /// Samples with this outcome.
    pub fn get(&self, outcome: Outcome) -> u64 {
        self.0[outcome.index()]
    }

    /// The tally with every count passed through `f` (the release noises counts this way).
    pub fn map_counts(&self, mut f: impl FnMut(u64) -> u64) -> OutcomeTally {
        OutcomeTally(self.0.map(&mut f))
    }

    /// All samples counted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The report's shape.
    pub fn counts(&self) -> SampleCounts {
        let g = |o| self.get(o);
        SampleCounts {
            total: self.total(),
            ok: g(Outcome::Ok),
            failed: FailedCounts {
                model_unavailable: g(Outcome::ModelUnavailable),
                budget_exhausted: g(Outcome::BudgetExhausted),
                invalid_item: g(Outcome::InvalidItem),
                failed: g(Outcome::Failed),
            },
            trapped: TrappedCounts {
                out_of_fuel: g(Outcome::OutOfFuel),
                deadline: g(Outcome::Deadline),
                timeout: g(Outcome::Timeout),
                memory: g(Outcome::Memory),
                stack_overflow: g(Outcome::StackOverflow),
                policy_violation: g(Outcome::PolicyViolation),
                other: g(Outcome::Other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kebab_case_everywhere() {
        for o in Outcome::ALL {
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
    }

    #[test]
    fn every_outcome_is_exactly_one_of_ok_failed_trapped() {
        for o in Outcome::ALL {
            let kinds = [o == Outcome::Ok, o.is_failed(), o.is_trapped()];
            assert_eq!(kinds.iter().filter(|k| **k).count(), 1, "{o:?}");
        }
    }

    #[test]
    fn the_tally_lands_in_the_report_shape() {
        let mut t = OutcomeTally::default();
        t.add(Outcome::Ok);
        t.add(Outcome::Ok);
        t.add(Outcome::InvalidItem);
        t.add(Outcome::StackOverflow);
        let c = t.counts();
        assert_eq!(
            (
                c.total,
                c.ok,
                c.failed.invalid_item,
                c.trapped.stack_overflow
            ),
            (4, 2, 1, 1)
        );
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json["failed"]["invalid-item"], 1);
        assert_eq!(json["trapped"]["stack-overflow"], 1);
    }
}
