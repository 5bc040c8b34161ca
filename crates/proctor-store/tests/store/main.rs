//! The store's behaviour, on SQLite and (with `PROCTOR_TEST_POSTGRES_URL`) on PostgreSQL.

mod accounts;
mod blocks;
mod common;
mod connect;
mod cosignatures;
mod exposure;
mod faults;
mod grants;
mod identity_alerts;
mod log;
mod log_search;
mod queue;
