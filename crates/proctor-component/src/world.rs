//! Which `proctor:eval` world a component was built for.

use std::fmt;

use crate::error::ComponentError;
use crate::imports::ISOLATION_INTERFACE;
use crate::surface::Surface;

/// The export that makes a component a 0.2.0 one.
const RUN_ISOLATED: &str = "run-isolated";

/// Which `proctor:eval` world a component was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// `proctor:eval@0.1.0`: model, dataset, scores.
    V0_1,
    /// `proctor:eval@0.2.0`: 0.1.0 and `isolation`, with the `run-isolated` export.
    V0_2,
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::V0_1 => "proctor:eval@0.1.0",
            World::V0_2 => "proctor:eval@0.2.0",
        })
    }
}

/// Which world the component was built for, from its exports: both worlds export `describe`
/// and `run-sample`, 0.2.0 also `run-isolated`. A component that imports `isolation` without
/// exporting `run-isolated` is of neither. The types are checked when it is linked.
pub fn check_world(surface: &Surface) -> Result<World, ComponentError> {
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
        return Err(ComponentError::WrongWorld(format!(
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
        Some(name) => Err(ComponentError::WrongWorld(format!(
            "it imports {name} but does not export {RUN_ISOLATED}, which proctor:eval@0.2.0 needs"
        ))),
        None => Ok(World::V0_1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imports::tests::surface_of;

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
}
