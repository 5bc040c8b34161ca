//! The cosigned checkpoint: the log's checkpoint with its witnesses' cosignatures
//! ([`crate::witnessing`]). A public read, as the plain checkpoint is.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proctor_api::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::witnessing::cosigned_checkpoint;

/// This module's routes, under `/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(log_checkpoint_cosigned))
}

/// The largest checkpoint that the configured quorum of witnesses cosigned: a C2SP signed
/// note whose first signature line is the service key's and whose following lines are the
/// witnesses' `cosignature/v1` lines. With no quorum configured, the current checkpoint.
#[utoipa::path(
    get, path = "/log/checkpoint/cosigned", tag = "log", operation_id = "get_cosigned_checkpoint",
    responses(
        (status = 200, description = "the signed note with the witnesses' cosignatures", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 503, description = "`not_witnessed`: no checkpoint has the quorum of cosignatures yet; `log_fork`: the database's log does not extend the last checkpoint this service signed", body = ErrorBody),
    ),
)]
pub async fn log_checkpoint_cosigned(State(state): State<AppState>) -> ApiResult<Response> {
    let (_, note) = cosigned_checkpoint(&state).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_witnessed",
            format!(
                "no checkpoint has cosignatures of {} witnesses yet",
                state.config.witnessing.quorum
            ),
        )
    })?;
    let mut response = note.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}
