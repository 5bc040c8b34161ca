//! The page shell every page shares, the headers every page and asset carries, and error
//! pages (a person gets HTML, with the status and a sentence; the API's JSON errors stay under
//! `/v1`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::error::ApiError;

/// Scripts, styles, images and fetches from this origin only; no inline code, no framing, no
/// form posted elsewhere. `data:` images are the screenshots' and charts' own.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// Adds the pages' security headers (to error pages too).
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Which part of the site a page belongs to, for the navigation's current link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The public log and what hangs off it.
    Log,
    /// The signed-in views.
    SignedIn,
}

/// A whole page: `title` in the tab, `body` in `<main>`, and `assets` (names under
/// `/assets/`) beside `style.css`: a `.css` name as a stylesheet, any other as a module script.
pub fn shell(title: &str, section: Section, assets: &[&str], body: Markup) -> Html<String> {
    let current = |s: Section| if s == section { Some("page") } else { None };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Proctor" }
                link rel="stylesheet" href="/assets/style.css";
                @for asset in assets {
                    @if asset.ends_with(".css") {
                        link rel="stylesheet" href={ "/assets/" (asset) };
                    } @else {
                        script type="module" src={ "/assets/" (asset) } {}
                    }
                }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.site {
                    a.brand href="/" { "Proctor" }
                    nav aria-label="Site" {
                        a href="/" aria-current=[current(Section::Log)] { "Log" }
                        a href="/app" aria-current=[current(Section::SignedIn)] { "Signed in" }
                        a href="/openapi.json" { "API" }
                    }
                }
                main #main { (body) }
                footer.site {
                    p {
                        "Every figure here is what a signed statement in the log says. "
                        "Check it yourself: " code { "proctor verify" } ", or this page's checks."
                    }
                }
            }
        }
    };
    Html(markup.into_string())
}

/// A table's head: one column header per name.
pub fn column_heads(names: &[&str]) -> Markup {
    html! {
        thead {
            tr {
                @for name in names {
                    th scope="col" { (name) }
                }
            }
        }
    }
}

/// A page that could not be shown: its status and why, as HTML.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    /// 404 with a sentence.
    pub fn not_found(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 400 with a sentence.
    pub fn bad_request(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

/// An API error keeps its status and its (client-safe) message: a 5xx's says nothing more
/// than the API's does.
impl From<ApiError> for PageError {
    fn from(err: ApiError) -> PageError {
        PageError {
            status: err.status(),
            message: err.message().to_owned(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let reason = self.status.canonical_reason().unwrap_or("Error");
        let body = html! {
            h1 { (self.status.as_u16()) " " (reason) }
            p.error role="alert" { (self.message) }
            p { a href="/" { "Back to the log" } }
        };
        let mut response = shell(reason, Section::Log, &[], body).into_response();
        *response.status_mut() = self.status;
        response
    }
}
