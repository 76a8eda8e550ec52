//! Per-user tool policies of a connector: they narrow its manifest's policy
//! for one user, in both eras, from the next request.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use berth_catalog::VersionRef;
use http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::super::registry::store_error;
use super::super::schema::{ErrorBody, PolicyBody, UserPolicyList};
use super::super::{AppState, json_error, store_failed};
use super::connectors::ConnectorPath;
use super::{Admin, ApiPath, json_object};

/// One user's policy on a connector.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserPolicyPath {
    /// The reverse-DNS half of the name.
    namespace: String,
    /// The rest of the name.
    name: String,
    /// The user, or `group:{group}` for a group's policy.
    user: String,
}

/// Every user's policy on a connector.
#[utoipa::path(
    get, path = "/admin/v1/connectors/{namespace}/{name}/policies", tag = "policies", operation_id = "listPolicies",
    params(ConnectorPath),
    responses(
        (status = 200, description = "Each user's policy", body = UserPolicyList),
        (status = 404, description = "No such connector", body = ErrorBody),
    )
)]
pub(crate) async fn list(_: Admin, State(app): State<Arc<AppState>>, ApiPath(c): ApiPath<ConnectorPath>) -> Response {
    let name = c.full();
    if let Err(e) = app.hosting.store().get(&name, &VersionRef::Latest).await {
        return store_error(e);
    }
    match app.hosting.policies(&name).await {
        Ok(p) => {
            let users = p.list().into_iter().map(|(u, doc)| (u, PolicyBody::from(doc))).collect();
            Json(UserPolicyList { connector: name, users }).into_response()
        }
        Err(e) => store_failed("tool policy", e),
    }
}

/// Sets one user's policy; a tool must pass both it and the manifest's.
#[utoipa::path(
    put, path = "/admin/v1/connectors/{namespace}/{name}/policies/{user}", tag = "policies", operation_id = "putPolicy",
    params(UserPolicyPath),
    request_body = PolicyBody,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Not a policy", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody),
    )
)]
pub(crate) async fn put(
    _: Admin,
    State(app): State<Arc<AppState>>,
    ApiPath(p): ApiPath<UserPolicyPath>,
    body: Bytes,
) -> Response {
    let name = format!("{}/{}", p.namespace, p.name);
    if let Err(e) = app.hosting.store().get(&name, &VersionRef::Latest).await {
        return store_error(e);
    }
    let bad_group = p.user.strip_prefix("group:").is_some_and(|g| !crate::groups::valid_name(g));
    if p.user.is_empty() || p.user.contains('/') || bad_group {
        return json_error(
            StatusCode::BAD_REQUEST,
            "expected …/{name}/policies/{user} or …/policies/group:{group}",
            None,
        );
    }
    let doc: PolicyBody = match json_object(&body) {
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
    match app.hosting.policies(&name).await {
        Ok(policies) => match policies.set(&p.user, doc.into()).await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => store_failed("tool policy", e),
        },
        Err(e) => store_failed("tool policy", e),
    }
}

/// Removes one user's policy.
#[utoipa::path(
    delete, path = "/admin/v1/connectors/{namespace}/{name}/policies/{user}", tag = "policies", operation_id = "deletePolicy",
    params(UserPolicyPath),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "The user has no policy there", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    _: Admin,
    State(app): State<Arc<AppState>>,
    ApiPath(p): ApiPath<UserPolicyPath>,
) -> Response {
    let name = format!("{}/{}", p.namespace, p.name);
    match app.hosting.policies(&name).await {
        Ok(policies) => match policies.remove(&p.user).await {
            Ok(true) => StatusCode::NO_CONTENT.into_response(),
            Ok(false) => json_error(StatusCode::NOT_FOUND, format!("{} has no policy on {name}", p.user), None),
            Err(e) => store_failed("tool policy", e),
        },
        Err(e) => store_failed("tool policy", e),
    }
}
