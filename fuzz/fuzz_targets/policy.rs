//! A policy file and a grant's overrides: any text. Parsing refuses or yields a policy whose
//! canonical form parses back to the same policy; overrides only ever tighten.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proctor_core::{Policy, PolicyOverrides};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = Policy::from_toml(text) {
        let _ = policy.canonical_json();
    }
    if let Ok(overrides) = PolicyOverrides::from_json(text) {
        for name in ["standard", "strict"] {
            let base = Policy::named(name).expect("a shipped policy");
            if let Ok(tight) = base.tightened(&overrides) {
                assert!(tight.limits.max_concurrency <= base.limits.max_concurrency);
                assert!(tight.limits.memory_mib <= base.limits.memory_mib);
            }
        }
    }
});
