//! Empty: cargo resolves a package's build-dependencies only when it has a build script, and
//! this crate's build-dependencies are what it is for (see Cargo.toml).

fn main() {}
