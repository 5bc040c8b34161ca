//! The service over real HTTP: an in-process server on an ephemeral port, on SQLite and (when
//! `PROCTOR_TEST_POSTGRES_URL` is set) PostgreSQL.

mod alerts;
mod bad_input;
mod caching;
mod common;
mod cpu_budget;
mod crash;
mod credentials;
mod displayed_text;
mod drain;
mod end_to_end;
mod exposure;
mod grants;
mod hostile_clients;
mod identity;
mod log_fork;
mod matrix;
mod model_hosts;
mod operator;
mod quotas;
mod raw_text;
mod router;
mod slow_clients;
mod store_faults;
mod tiles;
mod two_worlds;
mod web;
mod witnessed;
