//! The admin API's groups (`/admin/v1/groups`): who is in which group, for
//! group tool policies (`PUT …/connectors/{namespace}/{name}/policies/group:{group}`).
//! Memberships from the identity provider's groups claim are listed with
//! source `oidc`; the ones set here with source `admin`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::admin::{Admin, ApiPath};
use super::schema::ErrorBody;
use super::{AppState, json_error, store_failed};
use crate::groups::{Groups, Source, valid_name};

/// One user's membership of one group.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct MemberPath {
    /// The group: 1 to 128 characters, no `/` or control characters.
    group: String,
    /// The user.
    user: String,
}

/// The memberships, when groups are kept here.
fn groups(app: &AppState) -> Result<&Groups, Response> {
    app.groups.as_deref().ok_or_else(|| json_error(StatusCode::NOT_FOUND, "groups are not kept here", None))
}

/// Every group, its members and where each membership came from.
#[utoipa::path(
    get, path = "/admin/v1/groups", tag = "groups", operation_id = "listGroups",
    responses(
        (status = 200, description = "group → user → sources", body = BTreeMap<String, BTreeMap<String, Vec<Source>>>),
        (status = 404, description = "Groups are not kept here", body = ErrorBody),
    )
)]
pub(crate) async fn list(_: Admin, State(app): State<Arc<AppState>>) -> Response {
    match groups(&app) {
        Ok(g) => {
            let all: BTreeMap<String, BTreeMap<String, Vec<Source>>> = g.list();
            Json(all).into_response()
        }
        Err(r) => r,
    }
}

/// Adds a user to a group.
#[utoipa::path(
    put, path = "/admin/v1/groups/{group}/members/{user}", tag = "groups", operation_id = "addGroupMember",
    params(MemberPath),
    responses(
        (status = 204, description = "Added"),
        (status = 400, description = "A bad group or user name", body = ErrorBody),
        (status = 404, description = "Groups are not kept here", body = ErrorBody),
    )
)]
pub(crate) async fn add(_: Admin, State(app): State<Arc<AppState>>, ApiPath(p): ApiPath<MemberPath>) -> Response {
    let g = match groups(&app) {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !valid_name(&p.group) || p.user.is_empty() || p.user.len() > 256 {
        return json_error(
            StatusCode::BAD_REQUEST,
            "a group name is 1 to 128 characters without '/' or control characters, and the user is not empty",
            None,
        );
    }
    match g.add(&p.group, &p.user).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => store_failed("group", e),
    }
}

/// Removes a user from a group (an admin-made membership).
#[utoipa::path(
    delete, path = "/admin/v1/groups/{group}/members/{user}", tag = "groups", operation_id = "removeGroupMember",
    params(MemberPath),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such membership, or groups are not kept here", body = ErrorBody),
    )
)]
pub(crate) async fn remove(_: Admin, State(app): State<Arc<AppState>>, ApiPath(p): ApiPath<MemberPath>) -> Response {
    let g = match groups(&app) {
        Ok(g) => g,
        Err(r) => return r,
    };
    match g.remove(&p.group, &p.user).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => json_error(StatusCode::NOT_FOUND, format!("{} is not in {}", p.user, p.group), None),
        Err(e) => store_failed("group", e),
    }
}
