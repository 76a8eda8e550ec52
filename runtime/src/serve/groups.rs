//! The admin API's groups (`/admin/v1/groups`): who is in which group, for
//! group tool policies (`PUT …/connectors/{name}/policies/group:{group}`).
//! Memberships from the identity provider's groups claim are listed with
//! source `oidc`; the ones set here with source `admin`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use http::{HeaderMap, StatusCode};

use super::admin::authorize;
use super::{AppState, json_error};
use crate::groups::{Groups, valid_name};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/groups", get(list))
        .route("/admin/v1/groups/{group}/members/{user}", put(add).delete(remove))
}

/// The memberships, once the caller is known to be an admin.
fn groups<'a>(app: &'a AppState, headers: &HeaderMap) -> Result<&'a Groups, Response> {
    authorize(app, headers)?;
    app.groups.as_deref().ok_or_else(|| json_error(StatusCode::NOT_FOUND, "groups are not kept here", None))
}

async fn list(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match groups(&app, &headers) {
        Ok(g) => Json(g.list()).into_response(),
        Err(r) => r,
    }
}

async fn add(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((group, user)): Path<(String, String)>,
) -> Response {
    let g = match groups(&app, &headers) {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !valid_name(&group) || user.is_empty() || user.len() > 256 {
        return json_error(
            StatusCode::BAD_REQUEST,
            "a group name is 1 to 128 characters without '/' or control characters, and the user is not empty",
            None,
        );
    }
    match g.add(&group, &user).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => internal(e),
    }
}

async fn remove(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((group, user)): Path<(String, String)>,
) -> Response {
    let g = match groups(&app, &headers) {
        Ok(g) => g,
        Err(r) => return r,
    };
    match g.remove(&group, &user).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => json_error(StatusCode::NOT_FOUND, format!("{user} is not in {group}"), None),
        Err(e) => internal(e),
    }
}

fn internal(e: sqlx::Error) -> Response {
    tracing::error!(error = %e, "group membership store failed");
    json_error(StatusCode::INTERNAL_SERVER_ERROR, "the group store failed; see the server log", None)
}
