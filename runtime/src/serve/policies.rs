//! The admin API's per-user tool policies:
//! `GET /admin/v1/connectors/{name}/policies`,
//! `PUT|DELETE /admin/v1/connectors/{name}/policies/{user}`.
//! The caller is already known to be an admin.

use axum::Json;
use axum::response::{IntoResponse, Response};
use berth_catalog::VersionRef;
use berth_catalog::manifest::ToolPolicy as PolicyDoc;
use http::StatusCode;

use super::registry::store_error;
use super::{AppState, json_error};

pub(super) async fn list(app: &AppState, name: &str) -> Response {
    if let Err(e) = app.hosting.store().get(name, &VersionRef::Latest).await {
        return store_error(e);
    }
    match app.hosting.policies(name).await {
        Ok(p) => Json(serde_json::json!({"connector": name, "users": p.list()})).into_response(),
        Err(e) => internal(e),
    }
}

/// Sets one user's policy (`{"default": "allow"|"deny", "allow": […], "deny": […]}`),
/// applied from the next request, in both eras, to listing and calling alike.
pub(super) async fn put(app: &AppState, name: &str, user: &str, body: &[u8]) -> Response {
    if let Err(e) = app.hosting.store().get(name, &VersionRef::Latest).await {
        return store_error(e);
    }
    let bad_group = user.strip_prefix("group:").is_some_and(|g| !crate::groups::valid_name(g));
    if user.is_empty() || user.contains('/') || bad_group {
        return json_error(
            StatusCode::BAD_REQUEST,
            "expected …/{name}/policies/{user} or …/policies/group:{group}",
            None,
        );
    }
    let doc: PolicyDoc = match serde_json::from_slice(body) {
        Ok(d) => d,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "expected {{\"default\": \"allow\"|\"deny\", \"allow\": [patterns], \"deny\": [patterns], \
                     \"annotations\": {{\"readOnlyHint\"|\"destructiveHint\"|\"idempotentHint\"|\"openWorldHint\": bool}}}}: {e}"
                ),
                None,
            );
        }
    };
    match app.hosting.policies(name).await {
        Ok(p) => match p.set(user, doc).await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => internal(e),
        },
        Err(e) => internal(e),
    }
}

pub(super) async fn delete(app: &AppState, name: &str, user: &str) -> Response {
    match app.hosting.policies(name).await {
        Ok(p) => match p.remove(user).await {
            Ok(true) => StatusCode::NO_CONTENT.into_response(),
            Ok(false) => json_error(StatusCode::NOT_FOUND, format!("{user} has no policy on {name}"), None),
            Err(e) => internal(e),
        },
        Err(e) => internal(e),
    }
}

fn internal(e: sqlx::Error) -> Response {
    tracing::error!(error = %e, "tool policies");
    json_error(StatusCode::INTERNAL_SERVER_ERROR, "tool policy store error; see the server log", None)
}
