//! The names a component imports and exports at its top level.

use std::borrow::Cow;

use wasmparser::{ComponentExternName, ComponentTypeRef, Parser, Payload};

use crate::error::ComponentError;

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
/// [`ComponentError::Invalid`] when the binary does not parse.
pub fn surface(bytes: &[u8]) -> Result<Surface, ComponentError> {
    let invalid = |e: wasmparser::BinaryReaderError| ComponentError::Invalid(e.to_string());
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
