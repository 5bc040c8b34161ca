//! Bodies that are bytes as they are: uploads (an eval component, a JSONL dataset) and the
//! component a vendor downloads to review.

use utoipa::ToSchema;

/// Raw bytes (`application/octet-stream`). Only the description uses this type: the bytes are
/// sent and read as they are, never as JSON.
#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Bytes(pub Vec<u8>);
