//! `proctor eval new NAME --lang rust|python|js`: writes a ready-to-build eval project (the
//! arithmetic eval, a small dataset, a README) from the templates under `sdk/<lang>/template`,
//! which are embedded in the binary.
//!
//! The projects depend on the SDKs of the Proctor checkout this binary was built from, by path:
//! the SDKs are not on a registry, and a path keeps a project and its SDK at one version.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::examples::write_atomically;

#[derive(Args)]
pub struct NewArgs {
    /// The eval's name, also its directory: a lowercase letter, then lowercase letters, digits,
    /// `-` or `_` (at most 64).
    name: String,
    /// The language to write it in.
    #[arg(long, value_enum)]
    lang: Lang,
    /// Where to create the project's directory.
    #[arg(long, default_value = ".")]
    into: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Lang {
    Rust,
    Python,
    Js,
}

/// One template file: its path in the project and its text, with `{{...}}` placeholders.
type TemplateFile = (&'static str, &'static str);

macro_rules! template {
    ($lang:literal: $($path:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!("../../../sdk/", $lang, "/template/", $path)))),+]
    };
}

const RUST: &[TemplateFile] =
    template!("rust": "Cargo.toml", "src/lib.rs", "items.jsonl", "README.md");
const PYTHON: &[TemplateFile] =
    template!("python": "app.py", "arith.jsonl", "requirements.txt", "README.md");
const JS: &[TemplateFile] =
    template!("js": "eval.js", "arith.jsonl", "package.json", ".gitignore", "README.md");

impl Lang {
    fn files(self) -> &'static [TemplateFile] {
        match self {
            Lang::Rust => RUST,
            Lang::Python => PYTHON,
            Lang::Js => JS,
        }
    }
}

pub fn run(args: NewArgs) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    let target = args.into.join(&args.name);
    if target.exists() {
        bail!(
            "{} exists already; choose another name or --into",
            target.display()
        );
    }
    // Written beside the target and renamed into place, so a failure leaves no half project.
    std::fs::create_dir_all(&args.into)
        .with_context(|| format!("cannot create {}", args.into.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".proctor-new-")
        .tempdir_in(&args.into)
        .with_context(|| format!("cannot write in {}", args.into.display()))?;
    let sdk = sdk_root();
    let values = [
        ("{{name}}", args.name.clone()),
        ("{{crate}}", args.name.replace('-', "_")),
        ("{{sdk_path}}", path_text(&sdk.join(args.lang.sdk_dir()))),
    ];
    for (path, text) in args.lang.files() {
        let file = staging.path().join(path);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let filled = values
            .iter()
            .fold((*text).to_owned(), |t, (key, value)| t.replace(key, value));
        write_atomically(&file, filled.as_bytes())?;
    }
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, &target) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e).with_context(|| format!("cannot create {}", target.display()));
    }
    println!("{}", target.display());
    eprintln!(
        "wrote a {} eval; its README says how to build and run it",
        args.lang.label()
    );
    Ok(ExitCode::SUCCESS)
}

impl Lang {
    /// The SDK the project depends on, relative to `sdk/`.
    fn sdk_dir(self) -> &'static str {
        match self {
            // The Rust SDK is a crate of the workspace.
            Lang::Rust => "../crates/proctor-guest",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }
}

/// The same rule as a metric name: it becomes a directory, a package name and an eval name.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !first_ok || !rest_ok || name.len() > 64 {
        bail!(
            "{name:?} is not a valid eval name: use a lowercase letter, then lowercase letters, \
             digits, '-' or '_' (at most 64)"
        );
    }
    Ok(())
}

/// The `sdk/` directory of the checkout this binary was built from.
fn sdk_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk");
    here.canonicalize().unwrap_or(here)
}

/// A path as text for a project file; forward slashes, as TOML and JSON want them.
fn path_text(path: &Path) -> String {
    let normal = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    normal.to_string_lossy().replace('\\', "/")
}
