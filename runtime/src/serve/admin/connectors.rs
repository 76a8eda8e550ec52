//! The catalog through the admin API: publish, list, and change a
//! version's status (deprecate, yank, restore).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use berth_catalog::{Manifest, VersionRef};
use http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::super::registry::{ListParams, list_page, store_error};
use super::super::schema::{ErrorBody, RegistryEntry, ServerList, VersionStatus};
use super::super::{AppState, invalid_manifest, json_error};
use super::{Admin, ApiPath, ApiQuery, json_object};
use crate::hosting::HostingError;

/// A connector, named in the path by both halves of `namespace/name`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ConnectorPath {
    /// The reverse-DNS half of the name (`io.github.acme`).
    namespace: String,
    /// The rest of the name (`tickets`).
    name: String,
}

impl ConnectorPath {
    /// `namespace/name`.
    pub(crate) fn full(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One version of a connector.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct VersionPath {
    /// The reverse-DNS half of the name.
    namespace: String,
    /// The rest of the name.
    name: String,
    /// An exact version, or `latest`.
    version: String,
}

/// A status change.
#[derive(Deserialize, ToSchema)]
pub(crate) struct StatusChange {
    /// The new status: `deprecated` warns callers, `deleted` yanks the
    /// version (it answers 410 from then on), `active` restores it.
    status: VersionStatus,
}

/// Every connector version, a page at a time.
#[utoipa::path(
    get, path = "/admin/v1/connectors", tag = "connectors", operation_id = "listConnectors",
    params(ListParams),
    responses(
        (status = 200, description = "A page of versions", body = ServerList),
        (status = 400, description = "A bad filter or limit", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    _: Admin,
    State(app): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Response {
    list_page(&app, params).await
}

/// Publishes a manifest (JSON or YAML). Versions are immutable: publishing
/// one again is refused, whatever its status.
#[utoipa::path(
    post, path = "/admin/v1/connectors", tag = "connectors", operation_id = "publishConnector",
    request_body(
        description = "A manifest: the registry's server.json plus `_meta[\"dev.berth/connector\"]`",
        content((Object = "application/json"), (String = "application/yaml")),
    ),
    responses(
        (status = 201, description = "Published", body = RegistryEntry),
        (status = 400, description = "Not UTF-8", body = ErrorBody),
        (status = 409, description = "That version exists", body = ErrorBody),
        (status = 422, description = "Invalid: `details` holds each problem with its JSON pointer", body = ErrorBody),
    )
)]
pub(crate) async fn publish(_: Admin, State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "the manifest must be UTF-8 text", None);
    };
    let manifest = match Manifest::parse(text) {
        Ok(m) => m,
        Err(e) => return invalid_manifest(&e),
    };
    match app.hosting.publish(&manifest).await {
        Ok(entry) => {
            tracing::info!(connector = entry.name(), version = entry.version(), "published");
            (StatusCode::CREATED, Json(RegistryEntry::from(&entry))).into_response()
        }
        Err(HostingError::Store(e)) => store_error(e),
        Err(e) => json_error(StatusCode::UNPROCESSABLE_ENTITY, e, None),
    }
}

/// Every version of one connector, oldest first.
#[utoipa::path(
    get, path = "/admin/v1/connectors/{namespace}/{name}", tag = "connectors", operation_id = "getConnector",
    params(ConnectorPath),
    responses(
        (status = 200, description = "Its versions", body = Vec<RegistryEntry>),
        (status = 404, description = "No such connector", body = ErrorBody),
    )
)]
pub(crate) async fn versions(
    _: Admin,
    State(app): State<Arc<AppState>>,
    ApiPath(c): ApiPath<ConnectorPath>,
) -> Response {
    all_versions(&app, &c.full()).await
}

/// Every version of one connector, oldest first (the same as the
/// connector's own path).
#[utoipa::path(
    get, path = "/admin/v1/connectors/{namespace}/{name}/versions", tag = "connectors", operation_id = "listVersions",
    params(ConnectorPath),
    responses(
        (status = 200, description = "Its versions", body = Vec<RegistryEntry>),
        (status = 404, description = "No such connector", body = ErrorBody),
    )
)]
pub(crate) async fn versions_listed(
    _: Admin,
    State(app): State<Arc<AppState>>,
    ApiPath(c): ApiPath<ConnectorPath>,
) -> Response {
    all_versions(&app, &c.full()).await
}

async fn all_versions(app: &AppState, name: &str) -> Response {
    match app.hosting.store().versions(name).await {
        Ok(all) => Json(all.iter().map(RegistryEntry::from).collect::<Vec<_>>()).into_response(),
        Err(e) => store_error(e),
    }
}

/// One version (deleted ones included, with their status).
#[utoipa::path(
    get, path = "/admin/v1/connectors/{namespace}/{name}/versions/{version}", tag = "connectors", operation_id = "getVersion",
    params(VersionPath),
    responses(
        (status = 200, description = "The version", body = RegistryEntry),
        (status = 404, description = "No such connector or version", body = ErrorBody),
    )
)]
pub(crate) async fn version(_: Admin, State(app): State<Arc<AppState>>, ApiPath(v): ApiPath<VersionPath>) -> Response {
    let name = format!("{}/{}", v.namespace, v.name);
    match app.hosting.store().get(&name, &VersionRef::parse(&v.version)).await {
        Ok(e) => Json(RegistryEntry::from(&e)).into_response(),
        Err(e) => store_error(e),
    }
}

/// Deprecates, yanks (`deleted`) or restores one version.
#[utoipa::path(
    put, path = "/admin/v1/connectors/{namespace}/{name}/versions/{version}/status", tag = "connectors", operation_id = "setVersionStatus",
    params(VersionPath),
    request_body = StatusChange,
    responses(
        (status = 200, description = "The version with its new status", body = RegistryEntry),
        (status = 400, description = "Not a status change", body = ErrorBody),
        (status = 404, description = "No such connector or version", body = ErrorBody),
    )
)]
pub(crate) async fn set_status(
    _: Admin,
    State(app): State<Arc<AppState>>,
    ApiPath(v): ApiPath<VersionPath>,
    body: Bytes,
) -> Response {
    let change: StatusChange = match json_object(&body) {
        Ok(b) => b,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"status\": \"active\" | \"deprecated\" | \"deleted\"}}: {e}"),
                None,
            );
        }
    };
    let name = format!("{}/{}", v.namespace, v.name);
    match app.hosting.store().set_status(&name, &v.version, change.status.into()).await {
        Ok(e) => Json(RegistryEntry::from(&e)).into_response(),
        Err(e) => store_error(e),
    }
}
