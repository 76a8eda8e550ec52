//! `berth serve`'s HTTP surface: every connector's MCP endpoint, the admin
//! API and its console, the registry read API, on one listener.

mod account;
mod admin;
mod auth;
mod connect;
mod console;
mod groups;
mod mcp;
mod providers;
mod registry;
pub mod schema;
mod session;
mod tokens;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use berth_catalog::{Entry, Invalid};
use http::StatusCode;
use serde_json::{Value, json};

pub use admin::ServedSettings;

use crate::hosting::Hosting;

/// What the routes share.
pub struct AppState {
    /// The connectors being served.
    pub hosting: Arc<Hosting>,
    /// SHA-256 of the admin bearer token (compared hashed, so the comparison
    /// takes the same time whatever the guess).
    pub admin_token_sha256: [u8; 32],
    /// berth's authorization server, when MCP URLs need OAuth.
    pub auth: Option<Arc<berth_oauth::AuthorizationServer>>,
    /// Sign-in through an upstream OIDC provider, when configured.
    pub login: Option<Arc<berth_oauth::OidcLogin>>,
    /// Users' upstream accounts (with OAuth on).
    pub broker: Option<Arc<berth_oauth::Broker>>,
    /// The audit trail, for queries.
    pub audit: Option<crate::audit::AuditStore>,
    /// Renders the Prometheus metrics.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Group memberships.
    pub groups: Option<Arc<crate::groups::Groups>>,
    /// Members of this group are admins for the self-service routes.
    pub admin_group: Option<String>,
    /// The settings berth runs with.
    pub settings: Option<Arc<ServedSettings>>,
}

impl AppState {
    /// Whether `user` is in the admin group.
    pub fn in_admin_group(&self, user: &str) -> bool {
        match (&self.admin_group, &self.groups) {
            (Some(group), Some(groups)) => groups.of(user).contains(group),
            _ => false,
        }
    }
}

/// The whole application router.
pub fn router(state: Arc<AppState>) -> Router {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .merge(mcp::routes())
        .merge(admin::routes())
        .merge(registry::routes())
        .merge(auth::routes())
        .merge(connect::routes())
        .merge(session::routes())
        .merge(tokens::account_routes())
        .merge(console::routes())
        .fallback(not_found)
        .with_state(state);
    // A rewrite must happen before routing, so it wraps the finished router.
    Router::new().fallback_service(app).layer(axum::middleware::map_request(admin::decode_connector_name))
}

async fn not_found(uri: http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    admin::not_found(uri.path()).unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
}

/// Prometheus metrics: tool calls by connector, decision and outcome, call
/// durations, cold starts. Labels name connectors and tools, never users.
async fn metrics(axum::extract::State(app): axum::extract::State<Arc<AppState>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match &app.metrics {
        Some(h) => ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An entry as the registry API shapes it: the manifest as published, and
/// the registry's status block under `_meta`.
pub(crate) fn registry_entry(e: &Entry) -> Value {
    serde_json::to_value(schema::RegistryEntry::from(e)).unwrap_or_default()
}

/// A JSON error body: `{"error": …}` plus details.
pub(crate) fn json_error(
    status: StatusCode,
    message: impl std::fmt::Display,
    details: Option<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, axum::Json(schema::ErrorBody { error: message.to_string(), details })).into_response()
}

/// 500 for a store that failed: the cause goes to the log, not the caller.
pub(crate) fn store_failed(what: &str, e: impl std::fmt::Display) -> axum::response::Response {
    tracing::error!(error = %e, store = what, "store failed");
    json_error(StatusCode::INTERNAL_SERVER_ERROR, format!("the {what} store failed; see the server log"), None)
}

/// 422 with every problem of an invalid manifest.
pub(crate) fn invalid_manifest(err: &Invalid) -> axum::response::Response {
    json_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid manifest", Some(json!(err.problems)))
}

/// Splits `namespace/name/versions/V` (a registry or admin path tail).
pub(crate) fn split_versions(tail: &str) -> (&str, Option<&str>) {
    match tail.split_once("/versions") {
        Some((name, rest)) => (name, Some(rest.trim_start_matches('/'))),
        None => (tail, None),
    }
}
