//! What a component imports, sorted into what the host links and what it does not, and what a
//! policy's WASI mode allows of it.

use proctor_core::WasiMode;

use crate::error::ComponentError;
use crate::surface::Surface;

/// The eval world's own interfaces, each with the one version the host links: 0.1.0's four,
/// which 0.2.0 includes unchanged, and 0.2.0's `isolation`.
const EVAL_INTERFACES: &[(&str, &str)] = &[
    ("proctor:eval/types", "0.1.0"),
    ("proctor:eval/model", "0.1.0"),
    ("proctor:eval/dataset", "0.1.0"),
    ("proctor:eval/scores", "0.1.0"),
    (ISOLATION_INTERFACE, "0.2.0"),
];
pub(crate) const ISOLATION_INTERFACE: &str = "proctor:eval/isolation";

/// The WASI 0.2 packages the host links (as inert shims).
const WASI_PACKAGES: &[&str] = &[
    "wasi:io",
    "wasi:clocks",
    "wasi:random",
    "wasi:cli",
    "wasi:filesystem",
    "wasi:sockets",
];

/// What a component imports, sorted into what the host provides and what it does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSurvey {
    /// WASI interfaces imported (full names, versions included).
    pub wasi: Vec<String>,
    /// Imports neither in the eval world nor in the WASI the host links.
    pub forbidden: Vec<String>,
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
pub fn check_imports(survey: &ImportSurvey, wasi: WasiMode) -> Result<(), ComponentError> {
    let mut refused = survey.forbidden.clone();
    if wasi == WasiMode::None {
        refused.extend(survey.wasi.iter().cloned());
    }
    if refused.is_empty() {
        Ok(())
    } else {
        refused.sort();
        Err(ComponentError::ForbiddenImports(refused))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn surface_of(imports: &[&str], exports: &[&str]) -> Surface {
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
