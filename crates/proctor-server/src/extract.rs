//! Extractors whose rejections go through [`ApiError`], so a bad body, path or query gets the
//! same JSON error shape as everything else; and the bearer-token [`Caller`].

use std::str::FromStr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, EXPECT};
use axum::http::request::Parts;
use futures::StreamExt;
use proctor_store::{Account, AccountId, Role};
use serde::de::DeserializeOwned;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::ApiError;
use crate::state::{AppState, BodyLimits};

/// A JSON body, which is always an object, read within [`BodyLimits::read_timeout`]; its
/// rejection (syntax, shape, size, content type, time) is an [`ApiError`].
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let read = axum::Json::<serde_json::Value>::from_request(req, state);
        let axum::Json(value) = within(state.config.limits.read_timeout, read).await?;
        // serde reads a struct from an array of its fields too; every body the API takes is an
        // object, as described, so an array (or anything else) is refused before that.
        if !value.is_object() {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "the request body must be a JSON object",
            ));
        }
        let body = T::deserialize(integral(value)).map_err(|e| {
            ApiError::unprocessable(
                "invalid_body",
                format!("Failed to deserialize the JSON body into the target type: {e}"),
            )
        })?;
        Ok(JsonBody(body))
    }
}

/// `value` with every number that is an integer written as a float (`975.0`) made an integer:
/// JSON Schema counts it as one, so a field described as `integer` takes it, while serde would
/// refuse it for a `u64`. A float field takes the integer back exactly.
fn integral(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // 2^64 is exact as an f64; every integral float below it converts exactly.
            if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                Value::from(f as u64)
            } else if f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                Value::from(f as i64)
            } else {
                Value::Number(n)
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(integral).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, integral(v))).collect())
        }
        other => other,
    }
}

/// An evaluator's upload, raw bytes. The caller is known from the head, its attempt counted
/// against its quota ([`crate::quotas`]) and an upload slot
/// ([`BodyLimits::concurrent_uploads`]) held before a byte of the body is read; then the
/// body is read within the route's `DefaultBodyLimit` and [`BodyLimits::read_timeout`]. A
/// request refused from its head has its body discarded as it arrives ([`discard`]), never
/// held: a client without a token cannot make the server keep 64 MiB for it.
pub struct Uploaded {
    /// Who uploads.
    pub caller: Caller,
    /// What was uploaded.
    pub bytes: Bytes,
    /// Held until the handler is done with the bytes (validation and compilation included).
    _slot: OwnedSemaphorePermit,
}

impl FromRequest<AppState> for Uploaded {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let admitted = async {
            let EvaluatorCaller(caller) =
                EvaluatorCaller::from_request_parts(&mut parts, state).await?;
            state
                .upload_attempts
                .admit(caller.id(), state.config.quotas.uploads_per_hour)?;
            let slot = state.uploads.clone().try_acquire_owned().map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "uploads_busy",
                    format!(
                        "the service is reading {} uploads already; try again shortly",
                        state.config.limits.concurrent_uploads
                    ),
                )
            })?;
            Ok::<_, ApiError>((caller, slot))
        }
        .await;
        let (caller, slot) = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => {
                discard(&parts, body, state.config.limits);
                return Err(refusal);
            }
        };
        let read = Bytes::from_request(Request::from_parts(parts, body), state);
        let bytes = within(state.config.limits.read_timeout, read).await?;
        Ok(Uploaded {
            caller,
            bytes,
            _slot: slot,
        })
    }
}

/// Reads and drops the body of a request refused from its head, in the background, so that a
/// client still sending reads the refusal rather than a reset connection (a socket closed
/// with unread bytes is reset, and the reset can overtake the response), and its connection
/// stays usable. Bounded: at most the largest upload limit, within the body deadline; past
/// either the body is dropped and the connection closed. A client that sent
/// `Expect: 100-continue` was never told to go on, so its body is not asked for.
fn discard(parts: &Parts, body: Body, limits: BodyLimits) {
    if parts.headers.contains_key(EXPECT) {
        return;
    }
    let most = limits.component.max(limits.dataset);
    tokio::spawn(async move {
        let mut chunks = body.into_data_stream();
        let _ = tokio::time::timeout(limits.read_timeout, async {
            let mut seen = 0usize;
            while let Some(Ok(chunk)) = chunks.next().await {
                seen = seen.saturating_add(chunk.len());
                if seen > most {
                    break;
                }
            }
        })
        .await;
    });
}

/// A raw body within the route's `DefaultBodyLimit` and [`BodyLimits::read_timeout`] (an
/// optional JSON body read by hand).
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let read = Bytes::from_request(req, state);
        Ok(RawBody(
            within(state.config.limits.read_timeout, read).await?,
        ))
    }
}

/// `read`, unless it takes longer than `limit`: then a 408 (what arrived is dropped).
async fn within<T, E: Into<ApiError>>(
    limit: Duration,
    read: impl Future<Output = Result<T, E>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(limit, read).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s",
                limit.as_secs_f64()
            ),
        )),
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

/// A list's `limit`: 100 when absent, else 1 to 1000 as described (a 400 otherwise).
pub fn list_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(100),
        Some(n @ 1..=1000) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            "malformed_query",
            format!("limit must be from 1 to 1000, not {n}"),
        )),
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
/// body. (Uploads check theirs the same way, in [`Uploaded`].)
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
