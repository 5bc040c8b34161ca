//! `/v1/accounts`, `/v1/tokens` and `/v1/me`: the admin creates accounts and their bearer
//! tokens, lists and revokes them; every caller reads its own account.
//!
//! A token's secret is in one answer only, [`CreatedToken`]: the service keeps its sha256.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages accounts and tokens.
    Admin,
    /// Registers models and grants access to them.
    Vendor,
    /// Uploads evals and datasets, submits jobs.
    Evaluator,
    /// Reads attestations.
    Regulator,
}

impl Role {
    /// The role as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Vendor => "vendor",
            Role::Evaluator => "evaluator",
            Role::Regulator => "regulator",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An evaluator's kind; grants may cover a whole tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// A university or research group.
    Academic,
    /// An independent auditor.
    Auditor,
    /// A regulator's own evaluation team.
    Regulator,
    /// A company.
    Commercial,
}

impl Tier {
    /// The tier as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Academic => "academic",
            Tier::Auditor => "auditor",
            Tier::Regulator => "regulator",
            Tier::Commercial => "commercial",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An account as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    /// The account's id.
    #[schema(format = "uuid")]
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// An evaluator's tier; absent for other roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// `POST /v1/accounts`: an account of a role; an evaluator's with its tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// A unique name: 1 to 128 characters of `A-Z a-z 0-9 - _ .`.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub name: String,
    /// What the account may do.
    pub role: Role,
    /// Required for an evaluator, refused for every other role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
}

/// A token's metadata, never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// The token's id (what revoking it names).
    #[schema(format = "uuid")]
    pub id: String,
    /// The account it authenticates.
    #[schema(format = "uuid")]
    pub account: String,
    /// A label for people; may be empty.
    pub label: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, once revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
}

/// `POST /v1/accounts/{id}/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// A label for people: at most 128 characters, no control, invisible format (Unicode Cf)
    /// or line separator characters (the pattern lists those of the BMP). Empty when left
    /// out.
    #[serde(default)]
    #[schema(
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u0600-\\u0605\\u061C\\u06DD\\u070F\\u0890\\u0891\\u08E2\\u180E\\u200B-\\u200F\\u2028-\\u202E\\u2060-\\u2064\\u2066-\\u206F\\uFEFF\\uFFF9-\\uFFFB]*$"
    )]
    pub label: String,
}

/// The one answer that holds a token's secret: its metadata and the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token's metadata.
    #[serde(flatten)]
    pub info: TokenView,
    /// The bearer secret, shown this once.
    pub token: String,
}
