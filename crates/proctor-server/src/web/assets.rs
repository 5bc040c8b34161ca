//! The pages' scripts and styles, compiled into the binary: no CDN, no files beside it, and a
//! page can never load another version of its verifier than the one it was served with.

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::Response;

use crate::caching::{self, Freshness};
use crate::web::layout::PageError;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// Every file under `/assets/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../web/style.css"),
    },
    Asset {
        name: "verify.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/verify.js"),
    },
    Asset {
        name: "job.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/job.js"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/app.js"),
    },
    Asset {
        name: "app-common.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/app-common.js"),
    },
    Asset {
        name: "app-evaluator.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/app-evaluator.js"),
    },
    Asset {
        name: "app-vendor.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/app-vendor.js"),
    },
    Asset {
        name: "app-admin.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/app-admin.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../web/app.css"),
    },
];

/// `GET /assets/{name}`: the file, with an entity tag; revalidated, so an upgraded service's
/// pages never run an old script from a cache.
pub async fn serve(Path(name): Path<String>, request: HeaderMap) -> Result<Response, PageError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| PageError::not_found("no such asset"))?;
    Ok(caching::respond(
        &request,
        asset.body,
        asset.content_type,
        Freshness::Revalidate,
    ))
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    #[test]
    fn every_asset_has_one_name_and_a_body() {
        for (i, asset) in ASSETS.iter().enumerate() {
            assert!(!asset.body.is_empty(), "{} is empty", asset.name);
            assert!(
                ASSETS[i + 1..].iter().all(|b| b.name != asset.name),
                "{} twice",
                asset.name
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
                    ASSETS.iter().any(|a| a.name == name),
                    "{name} is not served"
                );
            }
        }
    }
}
