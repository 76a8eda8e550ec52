//! A connector's secrets: environment values its manifest declares, sealed
//! at rest, written and removed here and never read back.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use berth_catalog::VersionRef;
use http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::super::registry::store_error;
use super::super::schema::{ErrorBody, SecretEntry};
use super::super::{AppState, json_error};
use super::connectors::ConnectorPath;
use super::{Admin, ApiPath, ApiQuery, json_object};

/// One secret of a connector.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct SecretPath {
    /// The reverse-DNS half of the name.
    namespace: String,
    /// The rest of the name.
    name: String,
    /// The environment variable, as the manifest declares it.
    var: String,
}

/// Whose secret: one user's own value (used by their instances under `user`
/// or `session` isolation), or, without `user`, the connector's.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SecretOwner {
    /// The user whose value this is.
    user: Option<String>,
}

/// A secret's value.
#[derive(Deserialize, ToSchema)]
pub(crate) struct SecretValue {
    /// The value; never echoed, listed or logged.
    value: String,
}

/// The secrets set for a connector: names and times, never values.
#[utoipa::path(
    get, path = "/admin/v1/connectors/{namespace}/{name}/secrets", tag = "secrets", operation_id = "listSecrets",
    params(ConnectorPath),
    responses((status = 200, description = "Names and times", body = Vec<SecretEntry>))
)]
pub(crate) async fn list(_: Admin, State(app): State<Arc<AppState>>, ApiPath(c): ApiPath<ConnectorPath>) -> Response {
    match app.hosting.secrets().list(&c.full()).await {
        Ok(list) => Json(list.into_iter().map(SecretEntry::from).collect::<Vec<_>>()).into_response(),
        Err(e) => secret_error(e),
    }
}

/// Sets a declared environment variable's value, sealed; running instances
/// restart so the next request sees it. Undeclared names are refused, so no
/// one can set `LD_PRELOAD`.
#[utoipa::path(
    put, path = "/admin/v1/connectors/{namespace}/{name}/secrets/{var}", tag = "secrets", operation_id = "putSecret",
    params(SecretPath, SecretOwner),
    request_body = SecretValue,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Not `{\"value\": …}`", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody),
        (status = 422, description = "The manifest declares no such variable", body = ErrorBody),
    )
)]
pub(crate) async fn put(
    _: Admin,
    State(app): State<Arc<AppState>>,
    ApiPath(p): ApiPath<SecretPath>,
    ApiQuery(owner): ApiQuery<SecretOwner>,
    body: Bytes,
) -> Response {
    let (name, var) = (format!("{}/{}", p.namespace, p.name), p.var);
    let latest = match app.hosting.store().get(&name, &VersionRef::Latest).await {
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
    let Ok(SecretValue { value }) = json_object::<SecretValue>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "expected {\"value\": \"…\"}", None);
    };
    let user = owner.user.as_deref().filter(|u| !u.is_empty());
    match app.hosting.secrets().put(&name, user, &var, &value).await {
        Ok(()) => {
            tracing::info!(connector = %name, variable = %var, "secret set");
            app.hosting.restart(&name);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => secret_error(e),
    }
}

/// Removes a secret; running instances restart without it.
#[utoipa::path(
    delete, path = "/admin/v1/connectors/{namespace}/{name}/secrets/{var}", tag = "secrets", operation_id = "deleteSecret",
    params(SecretPath, SecretOwner),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such secret", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    _: Admin,
    State(app): State<Arc<AppState>>,
    ApiPath(p): ApiPath<SecretPath>,
    ApiQuery(owner): ApiQuery<SecretOwner>,
) -> Response {
    let (name, var) = (format!("{}/{}", p.namespace, p.name), p.var);
    match app.hosting.secrets().delete(&name, owner.user.as_deref(), &var).await {
        Ok(true) => {
            app.hosting.restart(&name);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => json_error(StatusCode::NOT_FOUND, format!("{name} has no secret {var}"), None),
        Err(e) => secret_error(e),
    }
}

fn secret_error(e: berth_oauth::SecretError) -> Response {
    tracing::error!(error = %e, "secret store error");
    json_error(StatusCode::INTERNAL_SERVER_ERROR, "secret store error; see the server log", None)
}
