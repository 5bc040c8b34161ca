//! `/app`: the signed-in views' shell. The page holds nothing of anyone's: `app.js` asks for
//! the visitor's API token, keeps it in this tab's session storage (never a URL, a cookie or
//! local storage), and renders the views of its role from the API's answers.

use axum::response::Html;
use maud::html;

use crate::web::layout::{Section, shell};

/// `GET /app`.
pub async fn page() -> Html<String> {
    let body = html! {
        div #app {
            noscript {
                p {
                    "The signed-in views need JavaScript: they call the API with your token "
                    "from this browser."
                }
            }
        }
    };
    shell("Signed in", Section::SignedIn, &["app.css", "app.js"], body)
}
