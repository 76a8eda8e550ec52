//! Personal access tokens over HTTP: admins manage anyone's
//! (`/admin/v1/tokens`), a user signed in to berth in a browser their own
//! (`/account/tokens`). The token is in the creation response only.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use berth_oauth::AuthorizationServer;
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::admin::{Admin, ApiPath, ApiQuery, json_object};
use super::schema::{CreatedToken, ErrorBody, TokenEntry, TokenList};
use super::session::current_user;
use super::{AppState, json_error};

/// Lifetime of a token created without one.
const DEFAULT_TTL: Duration = Duration::from_secs(30 * 86_400);
/// The longest lifetime a token may have.
const MAX_TTL: Duration = Duration::from_secs(365 * 86_400);

pub(super) fn account_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/account/tokens", get(own_list).post(own_create))
        .route("/account/tokens/{id}", delete(own_revoke))
}

/// A token to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    /// Whose token (admin API only; the signed-in user otherwise).
    user: Option<String>,
    /// What it is for.
    name: String,
    /// Connectors it may call; none listed means all.
    #[serde(default)]
    connectors: Vec<String>,
    /// Whether it may use the admin API (admin API only).
    #[serde(default)]
    admin: bool,
    /// Lifetime in seconds (default 30 days, at most 365).
    #[schema(maximum = 31536000)]
    expires_in: Option<u64>,
}

/// Whose tokens.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UserFilter {
    /// Only this user's.
    user: Option<String>,
}

/// One token.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TokenPath {
    /// The token's id, as listed.
    id: String,
}

fn listed(s: &AuthorizationServer, user: Option<&str>) -> Response {
    Json(TokenList { tokens: s.pats.list(user).into_iter().map(TokenEntry::from).collect() }).into_response()
}

fn server(app: &AppState) -> Result<&AuthorizationServer, Response> {
    app.auth.as_deref().ok_or_else(|| {
        json_error(StatusCode::NOT_FOUND, "personal access tokens need `berth serve --auth oauth`", None)
    })
}

/// Makes `new` for `user`; `admin_via` names the group an admin token is
/// owed to (self-service), if any.
async fn create(s: &AuthorizationServer, user: &str, new: NewToken, admin_via: Option<&str>) -> Response {
    let ttl = new.expires_in.map_or(DEFAULT_TTL, Duration::from_secs);
    if ttl > MAX_TTL {
        return json_error(StatusCode::BAD_REQUEST, "expires_in is at most 365 days", None);
    }
    if new.name.trim().is_empty() {
        return json_error(StatusCode::BAD_REQUEST, "name is required", None);
    }
    match s.pats.create(user, &new.name, new.connectors, new.admin, admin_via, ttl).await {
        Ok((token, info)) => {
            let body = CreatedToken { info: info.into(), token };
            (StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "personal access token not stored");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "the token could not be stored", None)
        }
    }
}

fn parse(body: &[u8]) -> Result<NewToken, Response> {
    json_object(body).map_err(|e| json_error(StatusCode::BAD_REQUEST, format!("invalid token request: {e}"), None))
}

/// Makes a token for any user; only here can it be an admin token.
#[utoipa::path(
    post, path = "/admin/v1/tokens", tag = "tokens", operation_id = "createToken",
    request_body = NewToken,
    responses(
        (status = 201, description = "Made; the only answer carrying the token", body = CreatedToken),
        (status = 400, description = "A bad request: no user, no name, too long a lifetime", body = ErrorBody),
        (status = 404, description = "OAuth is off", body = ErrorBody),
    )
)]
pub(crate) async fn admin_create(_: Admin, State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let s = match server(&app) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let new = match parse(&body) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let Some(user) = new.user.clone().filter(|u| !u.is_empty()) else {
        return json_error(StatusCode::BAD_REQUEST, "user is required", None);
    };
    create(s, &user, new, None).await
}

/// Every user's tokens, or one user's; never the tokens themselves.
#[utoipa::path(
    get, path = "/admin/v1/tokens", tag = "tokens", operation_id = "listTokens",
    params(UserFilter),
    responses(
        (status = 200, description = "The tokens", body = TokenList),
        (status = 404, description = "OAuth is off", body = ErrorBody),
    )
)]
pub(crate) async fn admin_list(
    _: Admin,
    State(app): State<Arc<AppState>>,
    ApiQuery(f): ApiQuery<UserFilter>,
) -> Response {
    match server(&app) {
        Ok(s) => listed(s, f.user.as_deref()),
        Err(r) => r,
    }
}

/// Revokes a token.
#[utoipa::path(
    delete, path = "/admin/v1/tokens/{id}", tag = "tokens", operation_id = "revokeToken",
    params(TokenPath),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token, or OAuth is off", body = ErrorBody),
    )
)]
pub(crate) async fn admin_revoke(
    _: Admin,
    State(app): State<Arc<AppState>>,
    ApiPath(p): ApiPath<TokenPath>,
) -> Response {
    match server(&app) {
        Ok(s) => revoke(s, &p.id, None).await,
        Err(r) => r,
    }
}

async fn revoke(s: &AuthorizationServer, id: &str, user: Option<&str>) -> Response {
    match s.pats.revoke(id, user).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => json_error(StatusCode::NOT_FOUND, format!("no token {id}"), None),
        Err(e) => {
            tracing::error!(error = %e, "personal access token not revoked");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "the token could not be revoked", None)
        }
    }
}

/// The signed-in user, for the self-service routes.
fn signed_in<'a>(app: &'a AppState, headers: &HeaderMap) -> Result<(&'a AuthorizationServer, String), Response> {
    let s = server(app)?;
    let user = current_user(app, headers)
        .ok_or_else(|| json_error(StatusCode::UNAUTHORIZED, "sign in to berth first (GET /login)", None))?;
    Ok((s, user))
}

async fn own_list(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match signed_in(&app, &headers) {
        Ok((s, user)) => listed(s, Some(&user)),
        Err(r) => r,
    }
}

/// JSON only: a cross-site form cannot send it, so the session cookie alone
/// cannot be used to mint a token for someone else's script.
async fn own_create(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (s, user) = match signed_in(&app, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return json_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the request as application/json", None);
    }
    let new = match parse(&body) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if new.user.as_deref().is_some_and(|u| u != user) {
        return json_error(StatusCode::FORBIDDEN, "tokens for others are made through the admin API", None);
    }
    if new.admin && !app.in_admin_group(&user) {
        return json_error(StatusCode::FORBIDDEN, "only members of the admin group create admin tokens", None);
    }
    if new.admin {
        tracing::info!(%user, "admin-group member creating an admin token");
    }
    create(s, &user, new, app.admin_group.as_deref()).await
}

async fn own_revoke(State(app): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match signed_in(&app, &headers) {
        Ok((s, user)) => revoke(s, &id, Some(&user)).await,
        Err(r) => r,
    }
}
