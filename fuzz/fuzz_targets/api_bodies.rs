//! The JSON bodies the API takes: any bytes, read as each request type. Reading refuses or
//! yields a value, never panics (the hand-written `Deserialize` impls included).
#![no_main]

use libfuzzer_sys::fuzz_target;
use proctor_api::accounts::{NewAccount, NewToken};
use proctor_api::approvals::Reject;
use proctor_api::grants::CreateGrant;
use proctor_api::jobs::SubmitJob;
use proctor_api::models::{RegisterModel, SetModelLedger};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<NewAccount>(data);
    let _ = serde_json::from_slice::<NewToken>(data);
    let _ = serde_json::from_slice::<Reject>(data);
    let _ = serde_json::from_slice::<CreateGrant>(data);
    let _ = serde_json::from_slice::<SubmitJob>(data);
    let _ = serde_json::from_slice::<RegisterModel>(data);
    let _ = serde_json::from_slice::<SetModelLedger>(data);
});
