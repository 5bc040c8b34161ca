//! The service over real HTTP: an in-process server on an ephemeral port, on SQLite and (when
//! `PROCTOR_TEST_POSTGRES_URL` is set) PostgreSQL.

mod bad_input;
mod common;
mod crash;
mod credentials;
mod displayed_text;
mod end_to_end;
mod grants;
mod hostile_clients;
mod matrix;
mod model_hosts;
mod raw_text;
mod router;
mod two_worlds;
