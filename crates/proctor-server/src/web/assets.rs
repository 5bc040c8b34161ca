//! The pages' scripts and styles, compiled into the binary: no CDN, no files beside it, and a
//! page can never load another version of its verifier than the one it was served with.

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::Response;

use crate::caching::{self, Freshness};
use crate::web::layout::PageError;

/// One embedded file: its name under `web/` and `/assets/`, and its text.
macro_rules! embed {
    ($name:literal) => {
        ($name, include_str!(concat!("../../web/", $name)))
    };
}

/// Every file under `/assets/`.
const ASSETS: &[(&str, &str)] = &[
    embed!("style.css"),
    embed!("verify.js"),
    embed!("job.js"),
    embed!("app.js"),
    embed!("app-common.js"),
    embed!("app-evaluator.js"),
    embed!("app-vendor.js"),
    embed!("app-admin.js"),
    embed!("app.css"),
];

/// What an asset is, by its name's ending (only scripts and styles are embedded).
fn content_type(name: &str) -> &'static str {
    if name.ends_with(".css") {
        "text/css; charset=utf-8"
    } else {
        "text/javascript; charset=utf-8"
    }
}

/// `GET /assets/{name}`: the file, with an entity tag; revalidated, so an upgraded service's
/// pages never run an old script from a cache.
pub async fn serve(Path(name): Path<String>, request: HeaderMap) -> Result<Response, PageError> {
    let &(name, body) = ASSETS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| PageError::not_found("no such asset"))?;
    Ok(caching::respond(
        &request,
        body,
        content_type(name),
        Freshness::Revalidate,
    ))
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    #[test]
    fn every_asset_has_one_name_and_a_body() {
        for (i, (name, body)) in ASSETS.iter().enumerate() {
            assert!(!body.is_empty(), "{name} is empty");
            assert!(
                ASSETS[i + 1..].iter().all(|(other, _)| other != name),
                "{name} twice"
            );
        }
    }

    /// A script or style written under `web/` but not listed here would be a 404 in the page.
    #[test]
    fn every_file_under_web_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        for entry in std::fs::read_dir(&dir).expect("web/ is readable") {
            let name = entry
                .expect("an entry")
                .file_name()
                .into_string()
                .expect("UTF-8");
            if name.ends_with(".js") || name.ends_with(".css") {
                assert!(
                    ASSETS.iter().any(|(n, _)| *n == name),
                    "{name} is not served"
                );
            }
        }
    }
}
