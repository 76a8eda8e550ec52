//! The admin API's OAuth providers (`/admin/v1/providers`): the upstream
//! servers whose tokens the credential broker keeps for users.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use berth_oauth::{Broker, BrokerError};
use http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::admin::{Admin, ApiPath, json_object};
use super::schema::{ErrorBody, ProviderBody, ProviderEntry, ProviderList};
use super::{AppState, json_error};

/// One provider.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ProviderPath {
    /// Its id (`github`): letters, digits, `-`, `_` and `.`.
    id: String,
}

/// The broker, when OAuth is on.
fn broker(app: &AppState) -> Result<&Broker, Response> {
    app.broker
        .as_deref()
        .ok_or_else(|| json_error(StatusCode::NOT_FOUND, "OAuth providers need `berth serve --auth oauth`", None))
}

/// The registered providers, without their secrets.
#[utoipa::path(
    get, path = "/admin/v1/providers", tag = "providers", operation_id = "listProviders",
    responses(
        (status = 200, description = "The providers", body = ProviderList),
        (status = 404, description = "OAuth is off", body = ErrorBody),
    )
)]
pub(crate) async fn list(_: Admin, State(app): State<Arc<AppState>>) -> Response {
    let broker = match broker(&app) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match broker.providers().await {
        Ok(all) => Json(ProviderList {
            providers: all.into_iter().map(ProviderEntry::from).collect(),
            redirect_uri: broker.callback().to_owned(),
        })
        .into_response(),
        Err(e) => broker_error(e),
    }
}

/// Registers or replaces a provider. The endpoints are resolved before it
/// is stored, so a typo fails here, not at a user's first connect. The
/// client secret is sealed and never returned.
#[utoipa::path(
    put, path = "/admin/v1/providers/{id}", tag = "providers", operation_id = "putProvider",
    params(ProviderPath),
    request_body = ProviderBody,
    responses(
        (status = 204, description = "Registered"),
        (status = 400, description = "A bad id or configuration", body = ErrorBody),
        (status = 404, description = "OAuth is off", body = ErrorBody),
        (status = 422, description = "The endpoints could not be resolved", body = ErrorBody),
    )
)]
pub(crate) async fn upsert(
    _: Admin,
    State(app): State<Arc<AppState>>,
    ApiPath(p): ApiPath<ProviderPath>,
    body: Bytes,
) -> Response {
    let broker = match broker(&app) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let id = p.id;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return json_error(StatusCode::BAD_REQUEST, "a provider id is letters, digits, '-', '_' and '.'", None);
    }
    let config: ProviderBody = match json_object(&body) {
        Ok(c) => c,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("invalid provider: {e}"), None),
    };
    match broker.put_provider(&id, config.into()).await {
        Ok(()) => {
            tracing::info!(provider = %id, "OAuth provider registered");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e @ BrokerError::Upstream(_)) => json_error(StatusCode::UNPROCESSABLE_ENTITY, e, None),
        Err(e) => broker_error(e),
    }
}

/// Removes a provider and every user's grant there.
#[utoipa::path(
    delete, path = "/admin/v1/providers/{id}", tag = "providers", operation_id = "deleteProvider",
    params(ProviderPath),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such provider, or OAuth is off", body = ErrorBody),
    )
)]
pub(crate) async fn remove(_: Admin, State(app): State<Arc<AppState>>, ApiPath(p): ApiPath<ProviderPath>) -> Response {
    let broker = match broker(&app) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match broker.delete_provider(&p.id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => json_error(StatusCode::NOT_FOUND, format!("no provider {}", p.id), None),
        Err(e) => broker_error(e),
    }
}

fn broker_error(e: BrokerError) -> Response {
    tracing::error!(error = %e, "credential broker error");
    json_error(StatusCode::INTERNAL_SERVER_ERROR, "credential broker error; see the server log", None)
}
