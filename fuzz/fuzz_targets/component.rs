//! An uploaded component: any bytes. The checks that run before anything is compiled (header,
//! top-level names, imports against each WASI mode, the world) read them without panicking,
//! and their verdicts agree with each other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proctor_component::{
    ComponentError, World, check_header, check_imports, check_world, surface, survey_imports,
};
use proctor_core::WasiMode;

/// A component binary's first eight bytes: `\0asm`, version 0x0d, layer 1.
const COMPONENT_HEADER: &[u8] = b"\0asm\x0d\0\x01\0";

fuzz_target!(|data: &[u8]| {
    check(data);
    // Most bytes fail the header; behind a valid one they reach the parser.
    if !data.starts_with(COMPONENT_HEADER) {
        check(&[COMPONENT_HEADER, data].concat());
    }
});

fn check(bytes: &[u8]) {
    if let Err(refusal) = check_header(bytes) {
        assert!(!refusal.to_string().is_empty());
        return;
    }
    let surface = match surface(bytes) {
        Ok(surface) => surface,
        Err(refusal) => {
            assert!(matches!(refusal, ComponentError::Invalid(_)), "{refusal:?}");
            return;
        }
    };
    let survey = survey_imports(&surface);
    assert!(survey.wasi.len() + survey.forbidden.len() <= surface.imports.len());
    for name in survey.wasi.iter().chain(&survey.forbidden) {
        assert!(surface.imports.contains(name), "{name:?} is not imported");
    }
    // `none` refuses everything `inert` refuses, and every WASI import besides.
    match (
        check_imports(&survey, WasiMode::Inert),
        check_imports(&survey, WasiMode::None),
    ) {
        (Ok(()), Ok(())) => assert!(survey.wasi.is_empty() && survey.forbidden.is_empty()),
        (Ok(()), Err(ComponentError::ForbiddenImports(names))) => {
            assert!(survey.forbidden.is_empty() && names.len() == survey.wasi.len());
        }
        (Err(ComponentError::ForbiddenImports(inert)), Err(ComponentError::ForbiddenImports(none))) => {
            assert_eq!(inert.len(), survey.forbidden.len());
            assert_eq!(none.len(), survey.forbidden.len() + survey.wasi.len());
            assert!(inert.iter().all(|name| none.contains(name)));
        }
        other => panic!("inconsistent verdicts {other:?}"),
    }
    match check_world(&surface) {
        Ok(world) => {
            let exports = |name: &str| surface.exports.iter().any(|e| e == name);
            assert!(exports("describe") && exports("run-sample"));
            assert_eq!(world == World::V0_2, exports("run-isolated"));
        }
        Err(refusal) => assert!(matches!(refusal, ComponentError::WrongWorld(_)), "{refusal:?}"),
    }
}
