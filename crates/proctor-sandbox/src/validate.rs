//! Checks on a component before anything of it runs, and before it is compiled (compiling
//! takes up to seconds of CPU, which a refused upload must not cost): is it a component at
//! all, does it import only what the eval world and the policy's WASI provide, and does it
//! export what the world asks. Names are read from the binary; the types are checked when it
//! is linked.

use std::borrow::Cow;

use proctor_core::WasiMode;
use wasmparser::{ComponentExternName, ComponentTypeRef, Parser, Payload};

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

/// The names a component imports and exports at its top level, read from its binary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Surface {
    /// Imports, full names (versions included).
    pub imports: Vec<String>,
    /// Exports.
    pub exports: Vec<String>,
}

/// Reads the top-level import and export names of a component (one that passed
/// [`check_header`]) without compiling it: nested modules and components are skipped over.
///
/// # Errors
///
/// [`SandboxError::Invalid`] when the binary does not parse.
pub fn surface(bytes: &[u8]) -> Result<Surface, SandboxError> {
    let invalid = |e: wasmparser::BinaryReaderError| SandboxError::Invalid(e.to_string());
    let mut surface = Surface::default();
    // Nested modules' and components' payloads come inline, each closed by its own `End`.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(invalid)?;
                    // A type import (the world's `use types.{...}`) is no capability.
                    if !matches!(import.ty, ComponentTypeRef::Type(_)) {
                        surface.imports.push(full_name(&import.name));
                    }
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    surface
                        .exports
                        .push(full_name(&export.map_err(invalid)?.name));
                }
            }
            _ => {}
        }
    }
    Ok(surface)
}

/// A name with its version suffix, as wasmtime names the import (`a:b/c@0.2` with `.1` is
/// `a:b/c@0.2.1`).
fn full_name(name: &ComponentExternName<'_>) -> String {
    let full = match name.version_suffix {
        Some(suffix) if name.implements.is_none() && name.name.contains('@') => {
            Cow::Owned(format!("{}{suffix}", name.name))
        }
        _ => Cow::Borrowed(name.name),
    };
    full.into_owned()
}

/// Sorts every import, so a refusal names all of them, not only the first (which is all
/// wasmtime's link error would give).
pub fn survey_imports(surface: &Surface) -> ImportSurvey {
    let mut survey = ImportSurvey::default();
    for name in &surface.imports {
        let (path, version) = name.split_once('@').unwrap_or((name, ""));
        let package = path.split_once('/').map_or(path, |(p, _)| p);
        if EVAL_INTERFACES.contains(&path) && version == EVAL_VERSION {
            continue;
        }
        if WASI_PACKAGES.contains(&package) && version.starts_with("0.2.") {
            survey.wasi.push(name.clone());
        } else {
            survey.forbidden.push(name.clone());
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
pub fn check_exports(surface: &Surface) -> Result<(), SandboxError> {
    let exports = &surface.exports;
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
