//! `GET /account/providers`: the signed-in user's standing at each OAuth
//! provider (connected, not yet, or in need of connecting again) with the
//! link that connects it, for the account page. Read-only and about the
//! caller alone, so the session cookie is enough; a cross-site page cannot
//! read the answer (same-origin policy) and nothing changes by loading it.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode, header};
use serde_json::json;

use super::session::current_user;
use super::{AppState, json_error};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/account/providers", get(providers))
}

async fn providers(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(broker) = app.broker.as_deref() else {
        return json_error(StatusCode::NOT_FOUND, "connecting accounts needs `berth serve --auth oauth`", None);
    };
    let Some(user) = current_user(&app, &headers) else {
        // Where to sign in, when berth can send the browser there itself.
        let sign_in = app.login.is_some().then_some("/login?next=/account/");
        return json_error(StatusCode::UNAUTHORIZED, "sign in to berth first", Some(json!({"signIn": sign_in})));
    };
    let (all, mine) = match (broker.providers().await, broker.accounts(&user).await) {
        (Ok(all), Ok(mine)) => (all, mine),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "account page: credential broker error");
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "credential broker error; see the server log", None);
        }
    };
    let providers: Vec<_> = all
        .iter()
        .map(|p| {
            let account = mine.iter().find(|a| a.provider == p.id);
            json!({
                "id": p.id,
                "connected": account.is_some_and(|a| a.status == "ok"),
                "status": account.map_or("not connected", |a| a.status.as_str()),
                "connectUrl": broker.connect_url(&p.id),
            })
        })
        .collect();
    ([(header::CACHE_CONTROL, "no-store")], Json(json!({"user": user, "providers": providers}))).into_response()
}
