//! The routes under `/v1`, grouped by what they serve. Each handler checks its caller's role
//! and ownership itself (through [`Caller`](crate::extract::Caller)), so no route relies on
//! a layer someone might forget to apply.

pub mod accounts;
pub mod alerts;
pub mod approvals;
pub mod artifacts;
pub mod cosigned;
pub mod grants;
pub mod jobs;
pub mod models;
pub mod operator;
pub mod public;
pub mod tiles;
pub mod usage;
