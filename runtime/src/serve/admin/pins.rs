//! Tool pins of a connector: every tool definition berth has relayed, and
//! the approval that lets a changed one through.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::super::schema::ErrorBody;
use super::super::{AppState, json_error, store_failed};
use super::connectors::ConnectorPath;
use super::{Admin, ApiPath, json_object};
use crate::pins::Pin;

/// One tool of a connector.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ToolPath {
    /// The reverse-DNS half of the name.
    namespace: String,
    /// The rest of the name.
    name: String,
    /// The tool.
    tool: String,
}

/// Which definition to approve.
#[derive(Deserialize, ToSchema)]
pub(crate) struct Approval {
    /// The definition's SHA-256, as listed.
    sha256: String,
}

/// Every definition seen of each tool, with its status and full text.
#[utoipa::path(
    get, path = "/admin/v1/connectors/{namespace}/{name}/tools", tag = "tools", operation_id = "listToolPins",
    params(ConnectorPath),
    responses((status = 200, description = "The definitions", body = Vec<Pin>))
)]
pub(crate) async fn list(_: Admin, State(app): State<Arc<AppState>>, ApiPath(c): ApiPath<ConnectorPath>) -> Response {
    match app.hosting.pins(&c.full()).await {
        Ok(pins) => Json(pins.list()).into_response(),
        Err(e) => store_failed("tool pin", e),
    }
}

/// Lets a changed tool definition through.
#[utoipa::path(
    post, path = "/admin/v1/connectors/{namespace}/{name}/tools/{tool}/approve", tag = "tools", operation_id = "approveTool",
    params(ToolPath),
    request_body = Approval,
    responses(
        (status = 204, description = "Approved"),
        (status = 400, description = "Not `{\"sha256\": …}`", body = ErrorBody),
        (status = 404, description = "The connector never showed that definition", body = ErrorBody),
    )
)]
pub(crate) async fn approve(
    _: Admin,
    State(app): State<Arc<AppState>>,
    ApiPath(t): ApiPath<ToolPath>,
    body: Bytes,
) -> Response {
    let Ok(Approval { sha256 }) = json_object(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "expected {\"sha256\": \"…\"}", None);
    };
    let name = format!("{}/{}", t.namespace, t.name);
    match app.hosting.pins(&name).await {
        Ok(pins) => match pins.approve(&t.tool, &sha256).await {
            Ok(true) => StatusCode::NO_CONTENT.into_response(),
            Ok(false) => {
                json_error(StatusCode::NOT_FOUND, format!("{name} never showed {} with that hash", t.tool), None)
            }
            Err(e) => store_failed("tool pin", e),
        },
        Err(e) => store_failed("tool pin", e),
    }
}
