//! The ledger: what each evaluator has spent on each model (differential-privacy epsilon, and
//! leakage bits), across every grant that covers the pair, and the caps a vendor may set on a
//! model across all evaluators.
//!
//! Why per (evaluator, model) and not per grant: an evaluator covered by an account grant and
//! a tier grant, or re-granted after a revocation, would otherwise start a fresh ledger and
//! could repeat a DP job until the noise averages away. So a job under grant `G` is accepted
//! only if what its evaluator already spent on the model, under any grant, plus the job's
//! spend fits `G`'s `epsilon_total` and `bits_total`, and the model's totals plus the spend fit
//! the vendor's model-wide caps.
//!
//! Units (the crate's `units` module): epsilon in millionths and bits in thousandths
//! (milli-bits), as integers, so a ledger of many small spends sums exactly. A spend is rounded
//! up and a limit down, so the ledger never under-counts what left.
//!
//! Locks: acceptance runs under its grant's row lock, then locks the pair's row (so two
//! acceptances of one pair under two grants are serialized), then the model's ledger row (so
//! two evaluators cannot both take the last of a model-wide cap). Lock order: grant, pair
//! ledger, model ledger, job, log head. Setting a model's caps locks only the model's row.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Budget, Result, StoreError};
use crate::grants::Budgets;
use crate::ids::{AccountId, ModelId};
use crate::rows::parse_id;
use crate::store::{Store, Tx};
use crate::units::{
    bits_limit_millis, bits_spend_millis, epsilon_spend_micros, epsilon_total_micros,
    micros_to_epsilon, millis_to_bits,
};

/// What one evaluator has spent on one model, across all its grants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairLedger {
    /// The evaluator.
    pub evaluator: AccountId,
    /// The model.
    pub model: ModelId,
    /// Epsilon spent by its accepted DP jobs, to millionths.
    pub epsilon_spent: f64,
    /// Leakage bounds of its accepted jobs, summed, to thousandths of a bit.
    pub bits_spent: f64,
}

/// Caps a vendor sets on one model across all evaluators; `None` is no cap.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ModelCaps {
    /// Epsilon over every evaluator's jobs on the model, kept to millionths (rounded down).
    pub epsilon_total: Option<f64>,
    /// Leakage bits over every evaluator's jobs on the model, kept to thousandths (rounded
    /// down).
    pub bits_total: Option<f64>,
}

/// A model's ledger: its vendor's caps and what all evaluators spent on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelLedger {
    /// The model.
    pub model: ModelId,
    /// The caps.
    pub caps: ModelCaps,
    /// Epsilon spent on it by every evaluator.
    pub epsilon_spent: f64,
    /// Leakage bits spent on it by every evaluator.
    pub bits_spent: f64,
}

impl ModelLedger {
    /// The ledger of a model with no caps and nothing spent.
    pub fn empty(model: ModelId) -> ModelLedger {
        ModelLedger {
            model,
            caps: ModelCaps::default(),
            epsilon_spent: 0.0,
            bits_spent: 0.0,
        }
    }
}

fn opt_limit(value: Option<f64>, to_units: fn(f64) -> Result<i64>) -> Result<Option<i64>> {
    value.map(to_units).transpose()
}

/// What one job takes from the ledgers, in their units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spend {
    /// A DP job's epsilon, in millionths.
    pub(crate) epsilon: Option<i64>,
    /// The job's leakage bound, in milli-bits.
    pub(crate) bits: i64,
}

impl Spend {
    /// The spend of a job with this epsilon (DP jobs) and leakage bound in bits.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for an epsilon that is not finite and positive, or bits that
    /// are not finite and 0 or more.
    pub(crate) fn of(epsilon: Option<f64>, bits: f64) -> Result<Spend> {
        Ok(Spend {
            epsilon: epsilon.map(epsilon_spend_micros).transpose()?,
            bits: bits_spend_millis(bits)?,
        })
    }
}

/// Whether `spent + more` stays within `limit`; an overflow counts as over.
fn within(spent: i64, more: i64, limit: i64) -> bool {
    spent.checked_add(more).is_some_and(|after| after <= limit)
}

/// The spent columns of a ledger row.
fn spent(row: &AnyRow) -> Result<(i64, i64)> {
    Ok((
        row.try_get("epsilon_spent_micro")?,
        row.try_get("bits_spent_milli")?,
    ))
}

/// Locks the pair's ledger row, then the model's, creating them empty if needed; checks that
/// `spend` fits the grant's `budgets` on the pair and the model's caps; counts it on both.
/// The caller holds the grant's lock (the lock order: grant, pair, model).
///
/// # Errors
///
/// [`StoreError::BudgetExhausted`] with [`Budget::BitsPerJob`], [`Budget::Epsilon`] (also for
/// a DP job under a grant without `epsilon_total`: under DP the ledger is mandatory),
/// [`Budget::BitsTotal`], [`Budget::ModelEpsilon`] or [`Budget::ModelBits`]; nothing is counted
/// then, and the caller rolls the transaction back.
pub(crate) async fn charge(
    tx: &mut Tx,
    evaluator: AccountId,
    model: ModelId,
    budgets: &Budgets,
    spend: Spend,
) -> Result<()> {
    if let Some(per_job) = opt_limit(budgets.bits_per_job, bits_limit_millis)?
        && spend.bits > per_job
    {
        return Err(StoreError::BudgetExhausted(Budget::BitsPerJob));
    }
    sqlx::query(
        "INSERT INTO ledgers (evaluator_id, model_id) VALUES ($1, $2) \
         ON CONFLICT (evaluator_id, model_id) DO NOTHING",
    )
    .bind(evaluator.to_string())
    .bind(model.to_string())
    .execute(&mut *tx.inner)
    .await?;
    let sql = tx.backend.sql(
        "SELECT epsilon_spent_micro, bits_spent_milli FROM ledgers \
         WHERE evaluator_id = $1 AND model_id = $2 {for_update}",
    );
    let (pair_epsilon, pair_bits) = spent(
        &sqlx::query(&sql)
            .bind(evaluator.to_string())
            .bind(model.to_string())
            .fetch_one(&mut *tx.inner)
            .await?,
    )?;
    sqlx::query(
        "INSERT INTO model_ledgers (model_id) VALUES ($1) ON CONFLICT (model_id) DO NOTHING",
    )
    .bind(model.to_string())
    .execute(&mut *tx.inner)
    .await?;
    let sql = tx.backend.sql(
        "SELECT epsilon_total_micro, bits_total_milli, epsilon_spent_micro, bits_spent_milli \
         FROM model_ledgers WHERE model_id = $1 {for_update}",
    );
    let row = sqlx::query(&sql)
        .bind(model.to_string())
        .fetch_one(&mut *tx.inner)
        .await?;
    let (model_epsilon, model_bits) = spent(&row)?;
    let model_epsilon_cap: Option<i64> = row.try_get("epsilon_total_micro")?;
    let model_bits_cap: Option<i64> = row.try_get("bits_total_milli")?;

    if let Some(epsilon) = spend.epsilon {
        // Under DP the ledger is mandatory: a grant without a total allows no DP job (the
        // server refuses to make such a grant; this covers grants made before it did).
        let total = opt_limit(budgets.epsilon_total, epsilon_total_micros)?.unwrap_or(0);
        if !within(pair_epsilon, epsilon, total) {
            return Err(StoreError::BudgetExhausted(Budget::Epsilon));
        }
    }
    if let Some(total) = opt_limit(budgets.bits_total, bits_limit_millis)?
        && !within(pair_bits, spend.bits, total)
    {
        return Err(StoreError::BudgetExhausted(Budget::BitsTotal));
    }
    if let (Some(epsilon), Some(cap)) = (spend.epsilon, model_epsilon_cap)
        && !within(model_epsilon, epsilon, cap)
    {
        return Err(StoreError::BudgetExhausted(Budget::ModelEpsilon));
    }
    if let Some(cap) = model_bits_cap
        && !within(model_bits, spend.bits, cap)
    {
        return Err(StoreError::BudgetExhausted(Budget::ModelBits));
    }

    let epsilon = spend.epsilon.unwrap_or(0);
    sqlx::query(
        "UPDATE ledgers SET epsilon_spent_micro = epsilon_spent_micro + $3, \
         bits_spent_milli = bits_spent_milli + $4 WHERE evaluator_id = $1 AND model_id = $2",
    )
    .bind(evaluator.to_string())
    .bind(model.to_string())
    .bind(epsilon)
    .bind(spend.bits)
    .execute(&mut *tx.inner)
    .await?;
    sqlx::query(
        "UPDATE model_ledgers SET epsilon_spent_micro = epsilon_spent_micro + $2, \
         bits_spent_milli = bits_spent_milli + $3 WHERE model_id = $1",
    )
    .bind(model.to_string())
    .bind(epsilon)
    .bind(spend.bits)
    .execute(&mut *tx.inner)
    .await?;
    Ok(())
}

// Unqualified: `models`, the one table they are joined with, has none of these names.
const MODEL_LEDGER_COLUMNS: &str =
    "model_id, epsilon_total_micro, bits_total_milli, epsilon_spent_micro, bits_spent_milli";

fn model_ledger_from_row(row: &AnyRow) -> Result<ModelLedger> {
    let epsilon_total: Option<i64> = row.try_get("epsilon_total_micro")?;
    let bits_total: Option<i64> = row.try_get("bits_total_milli")?;
    let (epsilon, bits) = spent(row)?;
    Ok(ModelLedger {
        model: parse_id(row, "model_id")?,
        caps: ModelCaps {
            epsilon_total: epsilon_total.map(micros_to_epsilon),
            bits_total: bits_total.map(millis_to_bits),
        },
        epsilon_spent: micros_to_epsilon(epsilon),
        bits_spent: millis_to_bits(bits),
    })
}

impl Store {
    /// What `evaluator` has spent on `model` across all its grants (zero before its first
    /// job).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn ledger(&self, evaluator: AccountId, model: ModelId) -> Result<PairLedger> {
        let row = sqlx::query(
            "SELECT epsilon_spent_micro, bits_spent_milli FROM ledgers \
             WHERE evaluator_id = $1 AND model_id = $2",
        )
        .bind(evaluator.to_string())
        .bind(model.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let (epsilon, bits) = row.as_ref().map(spent).transpose()?.unwrap_or((0, 0));
        Ok(PairLedger {
            evaluator,
            model,
            epsilon_spent: micros_to_epsilon(epsilon),
            bits_spent: millis_to_bits(bits),
        })
    }

    /// A model's ledger: its caps and what every evaluator spent on it (empty before its
    /// first job).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn model_ledger(&self, model: ModelId) -> Result<ModelLedger> {
        let sql = format!("SELECT {MODEL_LEDGER_COLUMNS} FROM model_ledgers WHERE model_id = $1");
        let row = sqlx::query(&sql)
            .bind(model.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => model_ledger_from_row(&row)?,
            None => ModelLedger::empty(model),
        })
    }

    /// The ledgers of every model `vendor` owns that has one, in one query (a model missing
    /// from the map has no caps and nothing spent).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn model_ledgers_of(
        &self,
        vendor: AccountId,
    ) -> Result<HashMap<ModelId, ModelLedger>> {
        let sql = format!(
            "SELECT {MODEL_LEDGER_COLUMNS} FROM model_ledgers l \
             JOIN models m ON m.id = l.model_id WHERE m.owner_id = $1"
        );
        let rows = sqlx::query(&sql)
            .bind(vendor.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| model_ledger_from_row(row).map(|l| (l.model, l)))
            .collect()
    }

    /// The vendor sets (or, with `None`, lifts) its model's caps across all evaluators. A cap
    /// below what is spent already stops every further job that spends on it; nothing spent
    /// is undone.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown model or one the vendor does not own;
    /// [`StoreError::Invalid`] for a cap that is negative, not finite or beyond 2^63 units.
    pub async fn set_model_caps(
        &self,
        vendor: AccountId,
        model: ModelId,
        caps: ModelCaps,
    ) -> Result<ModelLedger> {
        let epsilon = opt_limit(caps.epsilon_total, epsilon_total_micros)?;
        let bits = opt_limit(caps.bits_total, bits_limit_millis)?;
        self.transaction(async |tx| {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT owner_id FROM models WHERE id = $1")
                    .bind(model.to_string())
                    .fetch_optional(&mut *tx.inner)
                    .await?;
            if owner != Some(vendor.to_string()) {
                return Err(StoreError::NotFound("model"));
            }
            let sql = tx.backend.sql(&format!(
                "INSERT INTO model_ledgers (model_id, epsilon_total_micro, bits_total_milli, \
                 caps_set_at) VALUES ($1, $2, $3, {{now}}) ON CONFLICT (model_id) DO UPDATE SET \
                 epsilon_total_micro = excluded.epsilon_total_micro, \
                 bits_total_milli = excluded.bits_total_milli, caps_set_at = excluded.caps_set_at \
                 RETURNING {MODEL_LEDGER_COLUMNS}"
            ));
            let row = sqlx::query(&sql)
                .bind(model.to_string())
                .bind(epsilon)
                .bind(bits)
                .fetch_one(&mut *tx.inner)
                .await?;
            model_ledger_from_row(&row)
        })
        .await
    }
}
