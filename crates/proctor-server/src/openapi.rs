//! The API description served at `/openapi.json` (OpenAPI 3.1, hand-written). A test checks
//! that every path it lists is routed, so the two cannot drift apart silently.

/// The document.
pub const DOCUMENT: &str = include_str!("openapi.json");
