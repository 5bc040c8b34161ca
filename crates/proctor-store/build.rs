//! `sqlx::migrate!` embeds `migrations/` at compile time, and cargo does not watch that
//! directory on its own: without this, a new migration file lands in the binary only when some
//! source file of the crate changes too.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
