//! Checks on a component before anything of it runs, and before it is compiled (compiling
//! takes up to seconds of CPU, which a refused upload must not cost): is it a component at
//! all, does it import only what the eval world and the policy's WASI provide, and does it
//! export what the world asks. Names are read from the binary; the types are checked when it
//! is linked.

use std::borrow::Cow;

use proctor_core::WasiMode;
use wasmparser::{ComponentExternName, ComponentTypeRef, Parser, Payload};

use crate::error::SandboxError;
use crate::world::World;

/// The eval world's own interfaces, each with the one version the host links: 0.1.0's four,
/// which 0.2.0 includes unchanged, and 0.2.0's `isolation`.
const EVAL_INTERFACES: &[(&str, &str)] = &[
    ("proctor:eval/types", "0.1.0"),
    ("proctor:eval/model", "0.1.0"),
    ("proctor:eval/dataset", "0.1.0"),
    ("proctor:eval/scores", "0.1.0"),
    (ISOLATION_INTERFACE, "0.2.0"),
];
const ISOLATION_INTERFACE: &str = "proctor:eval/isolation";
/// The export that makes a component a 0.2.0 one.
const RUN_ISOLATED: &str = "run-isolated";

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
        if EVAL_INTERFACES.contains(&(path, version)) {
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

/// Which world the component was built for, from its exports: both worlds export `describe`
/// and `run-sample`, 0.2.0 also `run-isolated`. A component that imports `isolation` without
/// exporting `run-isolated` is of neither. The types are checked when it is linked.
pub fn check_world(surface: &Surface) -> Result<World, SandboxError> {
    let exports = &surface.exports;
    let exports_fn = |name: &str| exports.iter().any(|x| x == name);
    let missing: Vec<&str> = ["describe", "run-sample"]
        .into_iter()
        .filter(|e| !exports_fn(e))
        .collect();
    if !missing.is_empty() {
        let has = if exports.is_empty() {
            "nothing".to_owned()
        } else {
            exports.join(", ")
        };
        return Err(SandboxError::WrongWorld(format!(
            "it exports {has}; missing {}",
            missing.join(", ")
        )));
    }
    if exports_fn(RUN_ISOLATED) {
        return Ok(World::V0_2);
    }
    let isolation = surface.imports.iter().find(|name| {
        name.split_once('@').map_or(name.as_str(), |(path, _)| path) == ISOLATION_INTERFACE
    });
    match isolation {
        Some(name) => Err(SandboxError::WrongWorld(format!(
            "it imports {name} but does not export {RUN_ISOLATED}, which proctor:eval@0.2.0 needs"
        ))),
        None => Ok(World::V0_1),
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

    fn surface_of(imports: &[&str], exports: &[&str]) -> Surface {
        Surface {
            imports: imports.iter().map(|s| (*s).to_owned()).collect(),
            exports: exports.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn the_eval_interfaces_of_both_versions_are_the_hosts_and_nothing_else_is() {
        let surface = surface_of(
            &[
                "proctor:eval/types@0.1.0",
                "proctor:eval/model@0.1.0",
                "proctor:eval/dataset@0.1.0",
                "proctor:eval/scores@0.1.0",
                "proctor:eval/isolation@0.2.0",
                "proctor:eval/isolation@0.1.0",
                "proctor:eval/model@0.2.0",
                "proctor:eval/isolation@0.3.0",
                "wasi:io/streams@0.2.6",
            ],
            &[],
        );
        let survey = survey_imports(&surface);
        assert_eq!(survey.wasi, ["wasi:io/streams@0.2.6"]);
        assert_eq!(
            survey.forbidden,
            [
                "proctor:eval/isolation@0.1.0",
                "proctor:eval/model@0.2.0",
                "proctor:eval/isolation@0.3.0",
            ]
        );
    }

    #[test]
    fn the_world_is_told_by_the_run_isolated_export() {
        let v1 = surface_of(&["proctor:eval/model@0.1.0"], &["describe", "run-sample"]);
        assert_eq!(check_world(&v1).unwrap(), World::V0_1);
        let v2 = surface_of(&[], &["describe", "run-sample", "run-isolated"]);
        assert_eq!(check_world(&v2).unwrap(), World::V0_2);
        let half = surface_of(
            &["proctor:eval/isolation@0.2.0"],
            &["describe", "run-sample"],
        );
        let msg = check_world(&half).unwrap_err().to_string();
        assert!(
            msg.contains("proctor:eval/isolation@0.2.0") && msg.contains("run-isolated"),
            "{msg}"
        );
        let none = surface_of(&[], &["run-isolated"]);
        let msg = check_world(&none).unwrap_err().to_string();
        assert!(msg.contains("missing describe, run-sample"), "{msg}");
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
