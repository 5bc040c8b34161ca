//! `/v1/approvals`: jobs under a vendor's `manual` grants wait until the vendor has looked at
//! what they run (the eval's declaration, and the component itself if it wants) and approved
//! or rejected them. A rejected job ends `cancelled`, with its result entry in the log.

use proctor_core::MetricSpec;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts::Tier;
use crate::jobs::PolicyRefView;

/// A job waiting for its vendor, with what the vendor needs to decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PendingView {
    /// The job's id.
    #[schema(format = "uuid")]
    pub job: String,
    /// The manual grant it was accepted under.
    #[schema(format = "uuid")]
    pub grant: String,
    /// Who submitted it.
    pub evaluator: PendingEvaluator,
    /// The eval it runs.
    pub eval: PendingEval,
    /// The dataset it runs over.
    pub dataset: PendingDataset,
    /// The grant's policy it runs under.
    pub policy: PolicyRefView,
    /// RFC 3339: when it was submitted.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// The evaluator who submitted a waiting job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingEvaluator {
    /// The evaluator's account id.
    #[schema(format = "uuid")]
    pub id: String,
    /// The account's name.
    pub name: String,
    /// Its tier; `null` for an account without one.
    pub tier: Option<Tier>,
}

/// The eval a waiting job runs, as it declared itself at upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PendingEval {
    /// The component's sha256.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: String,
    /// Its declared name.
    pub name: String,
    /// Its declared version.
    pub version: String,
    /// The component's size in bytes.
    pub size: u64,
    /// The metrics it declared.
    pub metrics: Vec<MetricSpec>,
}

/// The dataset a waiting job runs over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingDataset {
    /// The dataset's sha256.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: String,
    /// Its items (samples).
    pub items: u64,
}

/// `POST /v1/approvals/{id}/reject`: the body is optional; an empty one rejects without a
/// reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reject {
    /// Why, in the job's attested reason: one line, at most 500 characters, without
    /// control, invisible format (Unicode Cf) or separator characters (the pattern lists those
    /// of the BMP); `no reason given` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        max_length = 500,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u0600-\\u0605\\u061C\\u06DD\\u070F\\u0890\\u0891\\u08E2\\u180E\\u200B-\\u200F\\u2028-\\u202E\\u2060-\\u2064\\u2066-\\u206F\\uFEFF\\uFFF9-\\uFFFB]*$"
    )]
    pub reason: Option<String>,
}
