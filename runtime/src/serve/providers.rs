//! The admin API's OAuth providers (`/admin/v1/providers`): the upstream
//! servers whose tokens the credential broker keeps for users.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use berth_oauth::{Broker, BrokerError, ProviderConfig};
use http::{HeaderMap, StatusCode};

use super::admin::authorize;
use super::{AppState, json_error};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/admin/v1/providers", get(list)).route("/admin/v1/providers/{id}", put(upsert).delete(remove))
}

/// The broker, once the caller is known to be an admin.
fn broker<'a>(app: &'a AppState, headers: &HeaderMap) -> Result<&'a Broker, Response> {
    authorize(app, headers)?;
    app.broker
        .as_deref()
        .ok_or_else(|| json_error(StatusCode::NOT_FOUND, "OAuth providers need `berth serve --auth oauth`", None))
}

async fn list(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let broker = match broker(&app, &headers) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match broker.providers().await {
        Ok(all) => Json(serde_json::json!({"providers": all, "redirectUri": broker.callback()})).into_response(),
        Err(e) => broker_error(e),
    }
}

/// `PUT /admin/v1/providers/{id}` with a [`ProviderConfig`]; the endpoints
/// are resolved before it is stored, so a typo fails here, not at a user's
/// first connect. The client secret is sealed and never returned.
async fn upsert(State(app): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let broker = match broker(&app, &headers) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return json_error(StatusCode::BAD_REQUEST, "a provider id is letters, digits, '-', '_' and '.'", None);
    }
    let config: ProviderConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("invalid provider: {e}"), None),
    };
    match broker.put_provider(&id, config).await {
        Ok(()) => {
            tracing::info!(provider = %id, "OAuth provider registered");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e @ BrokerError::Upstream(_)) => json_error(StatusCode::UNPROCESSABLE_ENTITY, e, None),
        Err(e) => broker_error(e),
    }
}

async fn remove(State(app): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let broker = match broker(&app, &headers) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match broker.delete_provider(&id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => json_error(StatusCode::NOT_FOUND, format!("no provider {id}"), None),
        Err(e) => broker_error(e),
    }
}

fn broker_error(e: BrokerError) -> Response {
    tracing::error!(error = %e, "credential broker error");
    json_error(StatusCode::INTERNAL_SERVER_ERROR, "credential broker error; see the server log", None)
}
