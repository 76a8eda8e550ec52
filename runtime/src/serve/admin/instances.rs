//! Running servers: list them, drain one (no new requests; it stops when
//! its calls are done) or kill one now.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::super::schema::ErrorBody;
use super::super::{AppState, json_error};
use super::{Admin, ApiPath};
use crate::pool::InstanceInfo;

/// The instances of one pool.
#[derive(Serialize, ToSchema)]
pub(crate) struct PoolInstances {
    /// `name@version`.
    connector: String,
    /// `shared`, or `user:NAME` for one user's pool.
    pool: String,
    /// Its instances.
    instances: Vec<InstanceInfo>,
}

/// One instance.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct InstancePath {
    /// The instance's `id`, as listed.
    id: String,
}

/// Every running connector version's pools and their instances.
#[utoipa::path(
    get, path = "/admin/v1/instances", tag = "instances", operation_id = "listInstances",
    responses((status = 200, description = "Pools and their instances", body = Vec<PoolInstances>))
)]
pub(crate) async fn list(_: Admin, State(app): State<Arc<AppState>>) -> Response {
    let mut all: Vec<PoolInstances> = app
        .hosting
        .instances()
        .into_iter()
        .map(|(connector, pool, instances)| PoolInstances { connector, pool, instances })
        .collect();
    let reads = all.iter_mut().flat_map(|p| p.instances.iter_mut()).map(InstanceInfo::read_usage);
    futures_util::future::join_all(reads).await;
    Json(all).into_response()
}

/// Takes an instance out of service: new requests go elsewhere (a new
/// instance starts if needed), and it stops once its calls are done.
#[utoipa::path(
    post, path = "/admin/v1/instances/{id}/drain", tag = "instances", operation_id = "drainInstance",
    params(InstancePath),
    responses(
        (status = 202, description = "Draining"),
        (status = 404, description = "No such instance", body = ErrorBody),
    )
)]
pub(crate) async fn drain(_: Admin, State(app): State<Arc<AppState>>, ApiPath(p): ApiPath<InstancePath>) -> Response {
    match p.id.parse() {
        Ok(id) if app.hosting.drain_instance(id) => StatusCode::ACCEPTED.into_response(),
        _ => unknown(&p.id),
    }
}

/// Kills an instance now; the calls it is serving fail.
#[utoipa::path(
    post, path = "/admin/v1/instances/{id}/kill", tag = "instances", operation_id = "killInstance",
    params(InstancePath),
    responses(
        (status = 204, description = "Killed"),
        (status = 404, description = "No such instance", body = ErrorBody),
    )
)]
pub(crate) async fn kill(_: Admin, State(app): State<Arc<AppState>>, ApiPath(p): ApiPath<InstancePath>) -> Response {
    match p.id.parse() {
        Ok(id) if app.hosting.kill_instance(id) => StatusCode::NO_CONTENT.into_response(),
        _ => unknown(&p.id),
    }
}

fn unknown(id: &str) -> Response {
    json_error(StatusCode::NOT_FOUND, format!("no instance {id}"), None)
}
