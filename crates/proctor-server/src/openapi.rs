//! The API description served at `/openapi.json` (OpenAPI 3.1), generated from the handlers:
//! each one's `#[utoipa::path]` names its method, path, parameters, body and every response
//! with its `proctor-api` type, and [`crate::api`] collects exactly the handlers it routes, so
//! a route cannot be served undescribed or described unserved.

use std::sync::OnceLock;

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder};

use crate::state::BodyLimits;

/// The document's frame: what the handlers' own descriptions are merged into.
pub fn base() -> OpenApi {
    let info = InfoBuilder::new()
        .title("Proctor")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Neutral AI evaluation service. Every error is {\"error\": {\"code\", \"message\"}} \
             with a stable code; another account's resource answers 404, as if absent.",
        ))
        .build();
    let components = ComponentsBuilder::new()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .build();
    OpenApiBuilder::new()
        .info(info)
        .components(Some(components))
        .build()
}

/// The document as served, built once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let doc = crate::api(BodyLimits::default()).into_openapi();
        // Serializing a document of plain maps and strings cannot fail.
        doc.to_json().unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    fn document() -> Value {
        serde_json::from_str(super::document()).expect("the document is JSON")
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                out.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
        out
    }

    #[test]
    fn operation_ids_are_unique_and_every_success_has_a_body_schema() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = BTreeSet::new();
        for (method, path, op) in operations(&doc) {
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            assert!(!id.is_empty(), "{method} {path} has no operationId");
            assert!(ids.insert(id.clone()), "operationId {id} twice");
            let responses = op["responses"].as_object().cloned().unwrap_or_default();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} has no success response"
            );
            // A 204 has no body by definition.
            let successes: Vec<_> = responses
                .iter()
                .filter(|(s, _)| s.starts_with('2') && *s != "204")
                .collect();
            for (status, response) in successes {
                let content = response["content"].as_object().cloned().unwrap_or_default();
                assert!(
                    !content.is_empty() && content.values().all(|c| c.get("schema").is_some()),
                    "{method} {path} {status} has no body schema: {response}"
                );
            }
            for (status, response) in &responses {
                if status.starts_with('4') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_authenticated_operation_says_so_and_answers_401() {
        let doc = document();
        for (method, path, op) in operations(&doc) {
            if op.get("security").is_some() {
                assert!(
                    op["responses"].get("401").is_some(),
                    "{method} {path} takes a token but does not describe a 401"
                );
            }
        }
    }
}
