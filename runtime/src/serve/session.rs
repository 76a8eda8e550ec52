//! Signing in to berth in a browser: a session cookie, set by the consent
//! page's local sign-in or by a round trip through the upstream OpenID
//! Connect provider, and read by the consent page and `/connect`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use berth_oauth::AuthorizationServer;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;

use super::AppState;
use super::auth::{cookie, escape, page};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/login", get(login)).route("/login/callback", get(callback))
}

/// The session cookie's name: `__Host-` pins it to this origin over https.
fn cookie_name(s: &AuthorizationServer) -> &'static str {
    if s.issuer().starts_with("https://") { "__Host-berth-session" } else { "berth-session" }
}

/// Who is signed in to this browser, if anyone.
pub(super) fn current_user(app: &AppState, headers: &HeaderMap) -> Option<String> {
    let s = app.auth.as_deref()?;
    s.session_user(&cookie(headers, cookie_name(s))?)
}

/// Signs the browser in as `user`. `Lax`, not `Strict`: the cookie must
/// come along when a provider redirects the browser back.
pub(super) fn set_session(res: &mut Response, s: &AuthorizationServer, user: &str) {
    let secure = if s.issuer().starts_with("https://") { "; Secure" } else { "" };
    let value =
        format!("{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=43200{secure}", cookie_name(s), s.session(user));
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Where to go after signing in: a path on berth only, never another site.
pub(super) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => n.to_owned(),
        _ => "/".to_owned(),
    }
}

/// Sends the browser to sign in, then back to `next`: through the OIDC
/// provider when there is one, else to the local sign-in page.
pub(super) fn sign_in_first(app: &AppState, next: &str) -> Response {
    match &app.login {
        Some(login) => Redirect::to(login.begin(next).as_str()).into_response(),
        None => page(
            StatusCode::UNAUTHORIZED,
            "<h1>Sign in first</h1><p>Sign in to berth from your MCP client (its consent page), then open this link again.</p>",
        ),
    }
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// `GET /login?next=PATH`: signs in through the OIDC provider.
async fn login(State(app): State<Arc<AppState>>, Query(q): Query<Next>) -> Response {
    if app.auth.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    sign_in_first(&app, &safe_next(q.next.as_deref()))
}

#[derive(Deserialize)]
struct Callback {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /login/callback`: the OIDC provider sends the browser back here.
async fn callback(State(app): State<Arc<AppState>>, Query(q): Query<Callback>) -> Response {
    let (Some(s), Some(login)) = (app.auth.as_deref(), app.login.as_deref()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(error) = q.error {
        let detail = q.error_description.unwrap_or_default();
        return page(
            StatusCode::FORBIDDEN,
            &format!(
                "<h1>Sign-in refused</h1><p>The identity provider said {}: {}</p>",
                escape(&error),
                escape(&detail)
            ),
        );
    }
    let (Some(state), Some(code)) = (q.state, q.code) else {
        return page(StatusCode::BAD_REQUEST, "<h1>Sign-in failed</h1><p>The callback lacks its state or code.</p>");
    };
    match login.finish(&state, &code).await {
        Ok((who, next)) => {
            tracing::info!(user = %who.user, groups = ?who.groups, "signed in through the identity provider");
            if let Some(groups) = &app.groups
                && let Err(e) = groups.sync_from_provider(&who.user, &who.groups).await
            {
                tracing::error!(error = %e, user = %who.user, "could not record the provider's groups");
            }
            let mut res = Redirect::to(&safe_next(Some(&next))).into_response();
            set_session(&mut res, s, &who.user);
            res
        }
        Err(e) => {
            tracing::warn!(error = %e, "sign-in through the identity provider failed");
            page(StatusCode::FORBIDDEN, &format!("<h1>Sign-in failed</h1><p>{}</p>", escape(&e.to_string())))
        }
    }
}
