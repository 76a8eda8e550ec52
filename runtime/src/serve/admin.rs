//! The admin API (`/admin/v1`): publish, inspect and withdraw connectors,
//! their secrets, pins and user policies, instances and the audit trail.
//! Guarded by the admin bearer token or an admin personal access token.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_catalog::{Manifest, Status, VersionRef};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::registry::{ListParams, list, store_error};
use super::{AppState, invalid_manifest, json_error, registry_entry, split_versions};
use crate::audit::AuditQuery;
use crate::hosting::HostingError;

/// Largest manifest accepted.
const MAX_MANIFEST: usize = 1 << 20;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/connectors", get(list_all).post(publish))
        .route("/admin/v1/connectors/{*tail}", get(one).put(put).delete(delete).post(approve))
        .route("/admin/v1/audit", get(audit))
        .route("/admin/v1/instances", get(instances))
        .merge(super::providers::routes())
        .merge(super::groups::routes())
        .merge(super::tokens::admin_routes())
        .layer(DefaultBodyLimit::max(MAX_MANIFEST))
}

/// Refuses a request without the admin bearer token.
pub(super) fn authorize(app: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !token.is_empty() && Sha256::digest(token.as_bytes()).as_slice() == app.admin_token_sha256 {
        return Ok(());
    }
    if token.starts_with(berth_oauth::PAT_PREFIX)
        && let Some(auth) = &app.auth
    {
        return match auth.pats.verify(token, berth_oauth::PatUse::Admin) {
            Ok(pat) => {
                tracing::debug!(user = %pat.user, pat = %pat.id, "admin API call with a personal access token");
                Ok(())
            }
            Err(e) => Err(json_error(StatusCode::FORBIDDEN, e, None)),
        };
    }
    let mut res = json_error(
        StatusCode::UNAUTHORIZED,
        "the admin API needs `Authorization: Bearer <admin token or admin personal access token>`",
        None,
    );
    res.headers_mut().insert(header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer realm=\"berth-admin\""));
    Err(res)
}

async fn list_all(State(app): State<Arc<AppState>>, headers: HeaderMap, params: Query<ListParams>) -> Response {
    if let Err(r) = authorize(&app, &headers) {
        return r;
    }
    list(State(app), params).await
}

/// `POST /admin/v1/connectors` with a manifest (JSON or YAML) as the body.
async fn publish(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authorize(&app, &headers) {
        return r;
    }
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
            (StatusCode::CREATED, Json(registry_entry(&entry))).into_response()
        }
        Err(HostingError::Store(e)) => store_error(e),
        Err(e) => json_error(StatusCode::UNPROCESSABLE_ENTITY, e, None),
    }
}

async fn one(State(app): State<Arc<AppState>>, headers: HeaderMap, Path(tail): Path<String>) -> Response {
    if let Err(r) = authorize(&app, &headers) {
        return r;
    }
    if let Some(name) = tail.strip_suffix("/policies") {
        return super::policies::list(&app, name).await;
    }
    if let Some(name) = tail.strip_suffix("/tools") {
        return match app.hosting.pins(name).await {
            Ok(pins) => Json(pins.list()).into_response(),
            Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, format!("tool pins: {e}"), None),
        };
    }
    if let Some((name, rest)) = tail.split_once("/secrets") {
        return match rest {
            "" | "/" => list_secrets(&app, name).await,
            _ => json_error(StatusCode::METHOD_NOT_ALLOWED, "secret values are write-only", None),
        };
    }
    let store = app.hosting.store();
    match split_versions(&tail) {
        (name, None | Some("")) => match store.versions(name).await {
            Ok(all) => Json(all.iter().map(registry_entry).collect::<Vec<_>>()).into_response(),
            Err(e) => store_error(e),
        },
        (name, Some(v)) => match store.get(name, &VersionRef::parse(v)).await {
            Ok(e) => Json(registry_entry(&e)).into_response(),
            Err(e) => store_error(e),
        },
    }
}

#[derive(Deserialize)]
struct StatusBody {
    status: Status,
}

#[derive(Deserialize)]
struct Approval {
    sha256: String,
}

/// `POST …/{name}/tools/{tool}/approve` with `{"sha256": …}`: lets a changed
/// tool definition through.
async fn approve(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(tail): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&app, &headers) {
        return r;
    }
    let Some((name, tool)) = tail.strip_suffix("/approve").and_then(|t| t.split_once("/tools/")) else {
        return json_error(StatusCode::NOT_FOUND, "expected …/{name}/tools/{tool}/approve", None);
    };
    let Ok(Approval { sha256 }) = serde_json::from_slice(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "expected {\"sha256\": \"…\"}", None);
    };
    match app.hosting.pins(name).await {
        Ok(pins) => match pins.approve(tool, &sha256).await {
            Ok(true) => StatusCode::NO_CONTENT.into_response(),
            Ok(false) => json_error(StatusCode::NOT_FOUND, format!("{name} never showed {tool} with that hash"), None),
            Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, format!("tool pins: {e}"), None),
        },
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, format!("tool pins: {e}"), None),
    }
}

/// Whose secret: `?user=NAME` for one user's own value (used by their
/// instances under `user` or `session` isolation), none for the connector's.
#[derive(Deserialize)]
struct SecretOwner {
    user: Option<String>,
}

/// `PUT …/{name}/versions/{version}/status`, `PUT …/{name}/secrets/{VAR}[?user=]`
/// or `PUT …/{name}/policies/{user}`.
async fn put(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(tail): Path<String>,
    Query(owner): Query<SecretOwner>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&app, &headers) {
        return r;
    }
    if let Some((name, user)) = tail.split_once("/policies/") {
        return super::policies::put(&app, name, user, &body).await;
    }
    match tail.split_once("/secrets/") {
        Some((name, var)) => put_secret(&app, name, var, owner.user.as_deref(), &body).await,
        None => set_status(&app, &tail, &body).await,
    }
}

/// `DELETE …/{name}/secrets/{VAR}[?user=]` or `DELETE …/{name}/policies/{user}`.
async fn delete(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(tail): Path<String>,
    Query(owner): Query<SecretOwner>,
) -> Response {
    if let Err(r) = authorize(&app, &headers) {
        return r;
    }
    if let Some((name, user)) = tail.split_once("/policies/") {
        return super::policies::delete(&app, name, user).await;
    }
    let Some((name, var)) = tail.split_once("/secrets/") else {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "only secrets and user policies are deleted; versions are deprecated or deleted by status",
            None,
        );
    };
    match app.hosting.secrets().delete(name, owner.user.as_deref(), var).await {
        Ok(true) => {
            app.hosting.restart(name);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => json_error(StatusCode::NOT_FOUND, format!("{name} has no secret {var}"), None),
        Err(e) => secret_error(e),
    }
}

/// `GET /admin/v1/instances`: every running connector version's instances.
async fn instances(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&app, &headers) {
        return r;
    }
    let all: Vec<serde_json::Value> = app
        .hosting
        .instances()
        .into_iter()
        .map(|(connector, user, instances)| {
            let pool = if user.is_empty() { "shared".to_owned() } else { format!("user:{user}") };
            serde_json::json!({"connector": connector, "pool": pool, "instances": instances})
        })
        .collect();
    Json(all).into_response()
}

#[derive(Deserialize)]
struct AuditParams {
    #[serde(flatten)]
    query: AuditQuery,
    /// `json` (default) or `jsonl` for an export.
    format: Option<String>,
}

/// `GET /admin/v1/audit?user=&connector=&tool=&decision=&since_ms=&limit=&format=jsonl`.
async fn audit(State(app): State<Arc<AppState>>, headers: HeaderMap, Query(p): Query<AuditParams>) -> Response {
    if let Err(r) = authorize(&app, &headers) {
        return r;
    }
    let Some(store) = &app.audit else { return json_error(StatusCode::NOT_FOUND, "auditing is off", None) };
    let records = match store.query(&p.query).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "audit query failed");
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "audit query failed; see the server log", None);
        }
    };
    if p.format.as_deref() == Some("jsonl") {
        let body: String = records.iter().filter_map(|r| serde_json::to_string(r).ok()).map(|l| l + "\n").collect();
        return ([(header::CONTENT_TYPE, "application/jsonl")], body).into_response();
    }
    Json(records).into_response()
}

#[derive(Deserialize)]
struct SecretBody {
    value: String,
}

/// Sets a declared environment variable's value, sealed; running instances
/// restart so the next request sees it. The value is never echoed or logged.
async fn put_secret(app: &AppState, name: &str, var: &str, user: Option<&str>, body: &[u8]) -> Response {
    let latest = match app.hosting.store().get(name, &VersionRef::Latest).await {
        Ok(e) => e,
        Err(e) => return store_error(e),
    };
    let declared = latest.manifest.server.packages.iter().flat_map(|p| &p.environment_variables).any(|v| v.name == var);
    if !declared {
        return json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{name} declares no environment variable {var}; only declared variables can be set"),
            None,
        );
    }
    let Ok(SecretBody { value }) = serde_json::from_slice::<SecretBody>(body) else {
        return json_error(StatusCode::BAD_REQUEST, "expected {\"value\": \"…\"}", None);
    };
    match app.hosting.secrets().put(name, user.filter(|u| !u.is_empty()), var, &value).await {
        Ok(()) => {
            tracing::info!(connector = name, variable = var, "secret set");
            app.hosting.restart(name);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => secret_error(e),
    }
}

async fn list_secrets(app: &AppState, name: &str) -> Response {
    match app.hosting.secrets().list(name).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => secret_error(e),
    }
}

fn secret_error(e: berth_oauth::SecretError) -> Response {
    tracing::error!(error = %e, "secret store error");
    json_error(StatusCode::INTERNAL_SERVER_ERROR, "secret store error; see the server log", None)
}

/// `PUT /admin/v1/connectors/{name}/versions/{version}/status` with
/// `{"status": "active" | "deprecated" | "deleted"}`.
async fn set_status(app: &AppState, tail: &str, body: &[u8]) -> Response {
    let (name, version) = match split_versions(tail) {
        (name, Some(rest)) => match rest.strip_suffix("/status") {
            Some(v) if !v.is_empty() => (name, v),
            _ => return json_error(StatusCode::NOT_FOUND, "expected …/{name}/versions/{version}/status", None),
        },
        _ => return json_error(StatusCode::NOT_FOUND, "expected …/{name}/versions/{version}/status", None),
    };
    let body: StatusBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"status\": \"active\" | \"deprecated\" | \"deleted\"}}: {e}"),
                None,
            );
        }
    };
    match app.hosting.store().set_status(name, version, body.status).await {
        Ok(e) => Json(registry_entry(&e)).into_response(),
        Err(e) => store_error(e),
    }
}
