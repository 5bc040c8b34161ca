//! Checks on a component before anything of it runs: is it a component at all, and does it
//! import only what the eval world and the policy's WASI provide.

use proctor_core::WasiMode;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::SandboxError;

/// The eval world's own interfaces, without their `@0.1.0`.
const EVAL_INTERFACES: &[&str] = &[
    "proctor:eval/types",
    "proctor:eval/model",
    "proctor:eval/dataset",
    "proctor:eval/scores",
];
const EVAL_VERSION: &str = "0.1.0";

/// The WASI 0.2 packages the host links (as inert shims).
const WASI_PACKAGES: &[&str] = &[
    "wasi:io",
    "wasi:clocks",
    "wasi:random",
    "wasi:cli",
    "wasi:filesystem",
    "wasi:sockets",
];

/// Tells garbage, a core module and a component apart from the first eight bytes, so each gets
/// its own message (wasmtime's parser would call them all "malformed").
pub fn check_header(bytes: &[u8]) -> Result<(), SandboxError> {
    if bytes.is_empty() {
        return Err(SandboxError::Empty);
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(SandboxError::NotWasm);
    }
    let layer = [bytes[4], bytes[5], bytes[6], bytes[7]];
    match layer {
        [1, 0, 0, 0] => Err(SandboxError::CoreModule),
        // Component-model binary: version 0x0d, layer 1.
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        _ => Err(SandboxError::UnknownLayer(layer)),
    }
}

/// What a component imports, sorted into what the host provides and what it does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSurvey {
    /// WASI interfaces imported (full names, versions included).
    pub wasi: Vec<String>,
    /// Imports neither in the eval world nor in the WASI the host links.
    pub forbidden: Vec<String>,
}

/// Lists every import, so a refusal names all of them, not only the first (which is all
/// wasmtime's link error would give).
pub fn survey_imports(engine: &Engine, component: &Component) -> ImportSurvey {
    let mut survey = ImportSurvey::default();
    for (name, _) in component.component_type().imports(engine) {
        let (path, version) = name.split_once('@').unwrap_or((name, ""));
        let package = path.split_once('/').map_or(path, |(p, _)| p);
        if EVAL_INTERFACES.contains(&path) && version == EVAL_VERSION {
            continue;
        }
        if WASI_PACKAGES.contains(&package) && version.starts_with("0.2.") {
            survey.wasi.push(name.to_owned());
        } else {
            survey.forbidden.push(name.to_owned());
        }
    }
    survey
}

/// Refuses imports the policy does not allow: anything outside the eval world and WASI 0.2,
/// and under `wasi = "none"` any WASI at all.
pub fn check_imports(survey: &ImportSurvey, wasi: WasiMode) -> Result<(), SandboxError> {
    let mut refused = survey.forbidden.clone();
    if wasi == WasiMode::None {
        refused.extend(survey.wasi.iter().cloned());
    }
    if refused.is_empty() {
        Ok(())
    } else {
        refused.sort();
        Err(SandboxError::ForbiddenImports(refused))
    }
}

/// The eval world exports `describe` and `run-sample`; the types are checked when linking.
pub fn check_exports(engine: &Engine, component: &Component) -> Result<(), SandboxError> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(n, _)| n.to_owned())
        .collect();
    let missing: Vec<&str> = ["describe", "run-sample"]
        .into_iter()
        .filter(|e| !exports.iter().any(|x| x == e))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        let has = if exports.is_empty() {
            "nothing".to_owned()
        } else {
            exports.join(", ")
        };
        Err(SandboxError::WrongWorld(format!(
            "it exports {has}; missing {}",
            missing.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_tell_garbage_modules_and_components_apart() {
        assert!(matches!(check_header(b""), Err(SandboxError::Empty)));
        assert!(matches!(
            check_header(b"hello, world"),
            Err(SandboxError::NotWasm)
        ));
        assert!(matches!(check_header(b"\0asm"), Err(SandboxError::NotWasm)));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(SandboxError::CoreModule)
        ));
        assert!(matches!(check_header(b"\0asm\x0d\0\x01\0"), Ok(())));
        assert!(matches!(
            check_header(b"\0asm\x02\0\0\0"),
            Err(SandboxError::UnknownLayer(_))
        ));
    }

    #[test]
    fn the_core_module_message_says_how_to_make_a_component() {
        let msg = SandboxError::CoreModule.to_string();
        assert!(
            msg.contains("wasm-tools component new") && msg.contains("wasm32-wasip2"),
            "{msg}"
        );
    }

    #[test]
    fn strict_wasi_refuses_every_wasi_import_and_names_them_all() {
        let survey = ImportSurvey {
            wasi: vec![
                "wasi:sockets/tcp@0.2.6".into(),
                "wasi:io/streams@0.2.6".into(),
            ],
            forbidden: vec![],
        };
        assert!(check_imports(&survey, WasiMode::Inert).is_ok());
        let msg = check_imports(&survey, WasiMode::None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("wasi:sockets/tcp@0.2.6") && msg.contains("wasi:io/streams@0.2.6"),
            "{msg}"
        );
    }
}
