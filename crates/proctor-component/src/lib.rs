//! What a WebAssembly component declares, read from its bytes without compiling it: is it a
//! component at all ([`check_header`]), which names it imports and exports at its top level
//! ([`surface`]), whether the host links every import and a policy's WASI mode allows them
//! ([`survey_imports`], [`check_imports`]), and which `proctor:eval` world it was built for
//! ([`check_world`]).
//!
//! The sandbox runs these before it compiles anything (compiling takes up to seconds of CPU,
//! which a refused upload must not cost); the types are checked when it links. Every input is
//! hostile: these functions read any bytes without panicking, which the fuzz target
//! `component` (fuzz/) checks.

mod error;
mod header;
mod imports;
mod surface;
mod world;

pub use error::ComponentError;
pub use header::check_header;
pub use imports::{ImportSurvey, check_imports, survey_imports};
pub use surface::{Surface, surface};
pub use world::{World, check_world};
