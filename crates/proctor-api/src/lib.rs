//! The bodies of Proctor's HTTP API, one definition for both ends: the server builds them,
//! clients (the `proctor` CLI, the SDKs' generated code) read them, and `/openapi.json` is
//! generated from them and from the handlers that use them, so the description cannot drift
//! from what is served.
//!
//! Every type here derives `Serialize`, `Deserialize` and `utoipa::ToSchema`; fields are
//! public and plain (strings for ids and times, enums for states). The server's handlers
//! (`proctor-server/src/routes`) say which body each operation takes and returns.
//!
//! # Map
//!
//! | module | bodies of |
//! | --- | --- |
//! | [`bytes`] | raw bodies: uploads and downloads |
//! | [`error`] | every error: `{"error": {"code", "message"}}` |
//! | [`accounts`] | `/v1/accounts`, `/v1/tokens`, `/v1/me` |
//! | [`models`] | `/v1/models`: registration, views, the model-wide ledger |
//! | [`identity`] | `/v1/models/{id}/identity`: a vendor's view of its model's identity canaries |
//! | [`artifacts`] | `/v1/evals`, `/v1/datasets`: uploads and their views |
//! | [`grants`] | `/v1/grants`: access, budgets, revocation |
//! | [`approvals`] | `/v1/approvals`: a manual grant's pending jobs |
//! | [`usage`] | `/v1/usage`: a vendor's usage report |
//! | [`jobs`] | `/v1/jobs`: submission, views, results |
//! | [`log`] | the public reads: attestations, the log, proofs, the public key |

pub mod accounts;
pub mod alerts;
pub mod approvals;
pub mod artifacts;
pub mod bytes;
pub mod error;
pub mod grants;
pub mod identity;
pub mod jobs;
pub mod log;
pub mod models;
pub mod usage;

pub use error::{ErrorBody, ErrorDetail};
