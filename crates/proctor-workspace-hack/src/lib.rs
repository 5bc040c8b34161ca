//! No code: this crate exists for its dependencies' features (see its Cargo.toml). The `proctor`
//! binary depends on it, so `cargo run --release -- demo` and `cargo test --release --workspace`
//! build every shared dependency with one feature set and the second reuses the first.
