//! Bundles (`/admin/v1/bundles`): virtual servers at `/mcp/bundle/{name}`
//! exposing chosen tools of several connectors. A change applies from the
//! next request to the bundle.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use berth_catalog::{StoreError, VersionRef};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::super::schema::ErrorBody;
use super::super::{AppState, json_error, store_failed};
use super::{Admin, ApiPath};
use crate::bundle::Bundle;

/// One bundle.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct BundlePath {
    /// The bundle's name.
    name: String,
}

/// Every bundle.
#[utoipa::path(
    get, path = "/admin/v1/bundles", tag = "bundles", operation_id = "listBundles",
    responses((status = 200, description = "Every bundle, by name", body = Vec<Bundle>))
)]
pub(crate) async fn list(_: Admin, State(app): State<Arc<AppState>>) -> Response {
    match app.hosting.bundles().list().await {
        Ok(all) => Json(all).into_response(),
        Err(e) => store_failed("bundle", e),
    }
}

/// One bundle.
#[utoipa::path(
    get, path = "/admin/v1/bundles/{name}", tag = "bundles", operation_id = "getBundle",
    params(BundlePath),
    responses(
        (status = 200, description = "The bundle", body = Bundle),
        (status = 404, description = "No such bundle", body = ErrorBody),
    )
)]
pub(crate) async fn get(_: Admin, State(app): State<Arc<AppState>>, ApiPath(p): ApiPath<BundlePath>) -> Response {
    match app.hosting.bundles().get(&p.name).await {
        Ok(Some(b)) => Json(b.as_ref()).into_response(),
        Ok(None) => no_bundle(&p.name),
        Err(e) => store_failed("bundle", e),
    }
}

/// Creates or replaces a bundle. The body's `name` may be left out; every
/// member must name a published connector (and version, when pinned).
#[utoipa::path(
    put, path = "/admin/v1/bundles/{name}", tag = "bundles", operation_id = "putBundle",
    params(BundlePath),
    request_body = Bundle,
    responses(
        (status = 200, description = "Replaced", body = Bundle),
        (status = 201, description = "Created", body = Bundle),
        (status = 400, description = "Not a bundle document", body = ErrorBody),
        (status = 422, description = "Every problem with the bundle", body = ErrorBody),
    )
)]
pub(crate) async fn put(
    _: Admin,
    State(app): State<Arc<AppState>>,
    ApiPath(p): ApiPath<BundlePath>,
    body: Bytes,
) -> Response {
    let bundle = match read(&p.name, &body) {
        Ok(b) => b,
        Err(msg) => return json_error(StatusCode::BAD_REQUEST, msg, None),
    };
    let mut problems = bundle.problems();
    for (i, m) in bundle.members.iter().enumerate() {
        let version = m.version.as_deref().map_or(VersionRef::Latest, VersionRef::parse);
        match app.hosting.store().get(&m.connector, &version).await {
            Ok(_) => {}
            Err(e @ StoreError::NotFound(_)) => problems.push(format!("members[{i}]: {e}")),
            Err(e) => return super::super::registry::store_error(e),
        }
    }
    if !problems.is_empty() {
        return json_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid bundle", Some(json!(problems)));
    }
    match app.hosting.bundles().put(&bundle).await {
        Ok(created) => {
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            (status, Json(bundle)).into_response()
        }
        Err(e) => store_failed("bundle", e),
    }
}

/// Removes a bundle; its URL answers 404 from the next request.
#[utoipa::path(
    delete, path = "/admin/v1/bundles/{name}", tag = "bundles", operation_id = "deleteBundle",
    params(BundlePath),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such bundle", body = ErrorBody),
    )
)]
pub(crate) async fn delete(_: Admin, State(app): State<Arc<AppState>>, ApiPath(p): ApiPath<BundlePath>) -> Response {
    match app.hosting.bundles().delete(&p.name).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => no_bundle(&p.name),
        Err(e) => store_failed("bundle", e),
    }
}

/// The body as a bundle named `name`. Objects all the way down: serde would
/// also take a member spelled as an array of its fields, which the schema
/// does not allow.
fn read(name: &str, body: &[u8]) -> Result<Bundle, String> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let Some(obj) = v.as_object_mut() else { return Err("expected a JSON object".into()) };
    match obj.get("name") {
        None => {
            obj.insert("name".into(), name.into());
        }
        Some(n) if n == name => {}
        Some(n) => return Err(format!("the body names bundle {n}, the path {name}")),
    }
    let members = obj.get("members").and_then(Value::as_array);
    if members.is_some_and(|ms| ms.iter().any(|m| !m.is_object())) {
        return Err("members: expected objects".into());
    }
    if obj.get("policy").is_some_and(|p| !p.is_object()) {
        return Err("policy: expected an object".into());
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn no_bundle(name: &str) -> Response {
    json_error(StatusCode::NOT_FOUND, format!("no bundle {name}"), None)
}
