//! `/connect/{provider}`: a signed-in user links their account at an
//! upstream OAuth provider, so connectors that act as them can get a token.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use berth_oauth::BrokerError;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::AppState;
use super::auth::{escape, page};
use super::session::{current_user, sign_in_first};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/connect/callback", get(callback)).route("/connect/{provider}", get(start))
}

#[derive(Deserialize)]
struct Scopes {
    scope: Option<String>,
}

/// Sends the signed-in user to the provider's consent page.
async fn start(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(provider): Path<String>,
    Query(q): Query<Scopes>,
) -> Response {
    let Some(broker) = app.broker.as_deref() else { return StatusCode::NOT_FOUND.into_response() };
    let Some(user) = current_user(&app, &headers) else {
        let next = format!("/connect/{}", urlencoding(&provider))
            + &q.scope.as_deref().map(|s| format!("?scope={}", urlencoding(s))).unwrap_or_default();
        return sign_in_first(&app, &next);
    };
    let scopes: Vec<String> = q.scope.unwrap_or_default().split_whitespace().map(str::to_owned).collect();
    match broker.connect(&user, &provider, &scopes).await {
        Ok(url) => Redirect::to(url.as_str()).into_response(),
        Err(e @ BrokerError::UnknownProvider(_)) => {
            page(StatusCode::NOT_FOUND, &format!("<h1>Unknown provider</h1><p>{}</p>", escape(&e.to_string())))
        }
        Err(e) => {
            tracing::error!(error = %e, provider, "connect could not start");
            page(
                StatusCode::BAD_GATEWAY,
                "<h1>Cannot connect</h1><p>The provider could not be reached; try again later.</p>",
            )
        }
    }
}

#[derive(Deserialize)]
struct Callback {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// The provider sends the browser back here with a code for the user who
/// started the connection (the state is bound to them).
async fn callback(State(app): State<Arc<AppState>>, headers: HeaderMap, Query(q): Query<Callback>) -> Response {
    let Some(broker) = app.broker.as_deref() else { return StatusCode::NOT_FOUND.into_response() };
    let Some(user) = current_user(&app, &headers) else {
        return page(StatusCode::UNAUTHORIZED, "<h1>Not signed in</h1><p>Start again from the connect link.</p>");
    };
    if let Some(error) = q.error {
        return page(
            StatusCode::FORBIDDEN,
            &format!("<h1>Not connected</h1><p>The provider said {}.</p>", escape(&error)),
        );
    }
    let (Some(state), Some(code)) = (q.state, q.code) else {
        return page(StatusCode::BAD_REQUEST, "<h1>Not connected</h1><p>The callback lacks its state or code.</p>");
    };
    match broker.complete(&user, &state, &code).await {
        Ok(provider) => page(
            StatusCode::OK,
            &format!(
                "<h1>Connected</h1><p>Your {} account is connected. You can close this window.</p>",
                escape(&provider)
            ),
        ),
        Err(e) => {
            tracing::warn!(error = %e, user, "connect failed");
            page(StatusCode::FORBIDDEN, &format!("<h1>Not connected</h1><p>{}</p>", escape(&e.to_string())))
        }
    }
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
