//! Extractors whose rejections go through [`ApiError`], so a bad body, path or query gets the
//! same JSON error shape as everything else; and the bearer-token [`Caller`].

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use proctor_store::{Account, AccountId, Role};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body; its rejection (syntax, shape, size, content type) is an [`ApiError`].
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(JsonBody(value))
    }
}

/// A raw body (an upload), limited by the route's `DefaultBodyLimit`.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(RawBody(Bytes::from_request(req, state).await?))
    }
}

/// The one path parameter of a route, as text; handlers parse it with [`parse_id`].
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(value) = Path::<String>::from_request_parts(parts, state).await?;
        Ok(PathParam(value))
    }
}

/// A query string; a malformed one is a 400.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(QueryParams(value))
    }
}

/// Parses an id from a path. An id that does not parse names nothing, so it is a 404 like an
/// unknown one.
pub fn parse_id<T: FromStr>(text: &str, what: &str) -> Result<T, ApiError> {
    text.parse().map_err(|_| ApiError::not_found(what))
}

/// The authenticated account behind a request's `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct Caller(pub Account);

impl Caller {
    /// The caller's id.
    pub fn id(&self) -> AccountId {
        self.0.id
    }

    /// Refuses (403) a caller whose role is not one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "a {} account may not do this",
                self.0.role
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthenticated("an `Authorization: Bearer` token is required")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            // The scheme is case-insensitive (RFC 9110, section 11.1).
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthenticated("the Authorization header must be `Bearer <token>`")
            })?;
        // The token itself is never logged; the store compares its sha256.
        let account = state
            .store
            .account_for_token(token)
            .await?
            .ok_or_else(|| ApiError::unauthenticated("unknown or revoked token"))?;
        Ok(Caller(account))
    }
}

/// Callers of one role, checked while the request's head is read: a caller of another role is
/// refused (403) before its JSON body is parsed, so a wrong role is reported before a malformed
/// body. (Uploads read their body first: see `routes::artifacts`.)
macro_rules! role_caller {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Caller);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, ApiError> {
                let caller = Caller::from_request_parts(parts, state).await?;
                caller.require(&[$role])?;
                Ok($name(caller))
            }
        }
    };
}

role_caller!(
    /// An admin.
    AdminCaller,
    Role::Admin
);
role_caller!(
    /// A vendor.
    VendorCaller,
    Role::Vendor
);
role_caller!(
    /// An evaluator.
    EvaluatorCaller,
    Role::Evaluator
);
