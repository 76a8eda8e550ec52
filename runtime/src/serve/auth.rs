//! berth's authorization server over HTTP, and the check every MCP request
//! passes when OAuth is on: discovery documents, registration, the consent
//! page, the token endpoint, and `401` with a pointer to the metadata.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, RawQuery, State};
use axum::response::{Html, IntoResponse, Json, Redirect, Response};
use axum::routing::get;
use berth_oauth::{
    AccessClaims, AuthorizationServer, AuthorizeError, AuthorizeParams, ClientMetadata, Consent, PAT_PREFIX, PatUse,
    TokenError,
};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;

use super::AppState;
use super::session::{current_user, set_session, sign_in_first};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/.well-known/oauth-protected-resource/mcp/{*target}", get(resource_metadata))
        .route("/oauth/jwks.json", get(jwks))
        .route("/oauth/register", axum::routing::post(register))
        .route("/oauth/authorize", get(authorize).post(decide))
        .route("/oauth/token", axum::routing::post(token))
}

fn server(app: &AppState) -> Result<&AuthorizationServer, Response> {
    app.auth.as_deref().ok_or_else(|| StatusCode::NOT_FOUND.into_response())
}

/// The cookie holding the consent form's anti-forgery value. `__Host-` pins
/// it to this origin over https; plain http (loopback development) cannot use it.
fn csrf_cookie(issuer: &str) -> &'static str {
    if issuer.starts_with("https://") { "__Host-berth-csrf" } else { "berth-csrf" }
}

async fn metadata(State(app): State<Arc<AppState>>) -> Response {
    match server(&app) {
        Ok(s) => Json(s.metadata()).into_response(),
        Err(r) => r,
    }
}

async fn resource_metadata(State(app): State<Arc<AppState>>, Path(target): Path<String>) -> Response {
    match server(&app) {
        Ok(s) => Json(s.resource_metadata(&format!("{}/mcp/{target}", s.issuer()))).into_response(),
        Err(r) => r,
    }
}

async fn jwks(State(app): State<Arc<AppState>>) -> Response {
    match server(&app) {
        Ok(s) => Json(s.jwks()).into_response(),
        Err(r) => r,
    }
}

async fn register(State(app): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let s = match server(&app) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let meta: ClientMetadata = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_client_metadata", &e.to_string()),
    };
    match s.clients.register(meta).await {
        Ok(client) => (StatusCode::CREATED, no_store(), Json(client)).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, no_store(), Json(e)).into_response(),
    }
}

async fn authorize(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    let s = match server(&app) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let user = current_user(&app, &headers);
    if user.is_none() && app.login.is_some() {
        // Sign in at the identity provider first, then come back to this
        // very request (its state is not spent yet).
        return sign_in_first(&app, &format!("/oauth/authorize?{}", raw.unwrap_or_default()));
    }
    if let Err(e) = s.load_client(params.client_id.as_deref()).await {
        return authorize_error(e);
    }
    match s.begin(&params) {
        Ok(consent) => {
            let cookie = format!(
                "{}={}; Path=/; HttpOnly; SameSite=Strict{}",
                csrf_cookie(s.issuer()),
                consent.csrf,
                if s.issuer().starts_with("https://") { "; Secure" } else { "" }
            );
            let mut res = page(StatusCode::OK, &consent_page(&consent, user.as_deref()));
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(e) => authorize_error(e),
    }
}

#[derive(Deserialize)]
struct Decision {
    id: String,
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    decision: String,
}

async fn decide(State(app): State<Arc<AppState>>, headers: HeaderMap, Form(d): Form<Decision>) -> Response {
    let s = match server(&app) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let cookie = cookie(&headers, csrf_cookie(s.issuer()));
    if cookie.as_deref() != Some(d.csrf.as_str()) {
        return page(
            StatusCode::FORBIDDEN,
            "<h1>Refused</h1><p>The form's anti-forgery check failed. Start the sign-in again from your app.</p>",
        );
    }
    let approve = d.decision == "approve";
    let session = current_user(&app, &headers);
    let user = match session.clone() {
        Some(u) => u,
        None if !approve => String::new(),
        None if s.users.verify(&d.username, &d.password) => d.username.clone(),
        None => {
            tracing::info!(user = %d.username, "sign-in failed on the consent page");
            return page(
                StatusCode::UNAUTHORIZED,
                "<h1>Sign-in failed</h1><p>Wrong name or password. Start again from your app.</p>",
            );
        }
    };
    match s.decide(&d.id, &d.csrf, &user, approve) {
        Ok(url) => {
            let mut res = Redirect::to(&url).into_response();
            if approve && session.is_none() {
                set_session(&mut res, s, &user);
            }
            res
        }
        Err(e) => authorize_error(e),
    }
}

async fn token(State(app): State<Arc<AppState>>, Form(form): Form<HashMap<String, String>>) -> Response {
    let s = match server(&app) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match s.token(&form).await {
        Ok(t) => (no_store(), Json(t)).into_response(),
        Err(e) => {
            let status = if e.is_client_error() { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
            (status, no_store(), Json(e)).into_response()
        }
    }
}

/// Checks the bearer token of a request to `/mcp/{target}`; the `401`
/// tells the client where to find the resource's metadata.
pub(crate) fn check(s: &AuthorizationServer, headers: &HeaderMap, target: &str) -> Result<AccessClaims, Response> {
    let resource = format!("{}/mcp/{target}", s.issuer());
    let metadata = format!("{}/.well-known/oauth-protected-resource/mcp/{target}", s.issuer());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let refuse = |error: Option<(&str, String)>| {
        let mut value = format!("Bearer resource_metadata=\"{metadata}\", scope=\"mcp\"");
        if let Some((code, desc)) = &error {
            value.push_str(&format!(", error=\"{code}\", error_description=\"{desc}\""));
        }
        let mut res = (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": error.map(|e| e.1).unwrap_or_else(|| "authorization required".into())})),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        res
    };
    let Some(token) = bearer else { return Err(refuse(None)) };
    if token.starts_with(PAT_PREFIX) {
        let connector = target.split_once('@').map_or(target, |(name, _)| name);
        let pat = s
            .pats
            .verify(token, PatUse::Connector(connector))
            .map_err(|e| refuse(Some(("invalid_token", e.to_string()))))?;
        return Ok(AccessClaims {
            iss: s.issuer().to_owned(),
            sub: pat.user,
            aud: resource,
            exp: (pat.expires_ms / 1000) as u64,
            iat: (pat.created_ms / 1000) as u64,
            jti: pat.id.clone(),
            client_id: format!("pat:{}", pat.id),
            scope: "mcp".into(),
        });
    }
    s.verify(token, &resource).map_err(|e: TokenError| refuse(Some(("invalid_token", e.to_string()))))
}

pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

fn authorize_error(e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Redirect(url) => Redirect::to(&url).into_response(),
        AuthorizeError::Show(msg) => {
            page(StatusCode::BAD_REQUEST, &format!("<h1>Cannot continue</h1><p>{}</p>", escape(&msg)))
        }
    }
}

fn oauth_error(status: StatusCode, code: &str, desc: &str) -> Response {
    (status, no_store(), Json(serde_json::json!({"error": code, "error_description": desc}))).into_response()
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")]
}

/// An HTML page that no other site may frame, script or cache.
pub(super) fn page(status: StatusCode, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>berth</title><style>body{{font:16px system-ui;max-width:32em;margin:3em auto}}</style></head><body>{body}</body></html>"
    );
    let mut res = (status, Html(html)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

/// The consent page; `user` is who is already signed in (else the page
/// asks for a local account's name and password).
fn consent_page(c: &Consent, user: Option<&str>) -> String {
    let scope = if c.scope.is_empty() { "use this connector".to_owned() } else { escape(&c.scope) };
    let sign_in = match user {
        Some(u) => {
            format!("<p>Signed in as <b>{}</b>.</p><button name=decision value=approve>Allow</button>", escape(u))
        }
        None => "<p><label>Name <input name=username autocomplete=username></label></p>\
                 <p><label>Password <input name=password type=password autocomplete=current-password></label></p>\
                 <button name=decision value=approve>Sign in and allow</button>"
            .to_owned(),
    };
    format!(
        "<h1>Allow access?</h1><p><b>{client}</b> asks to <b>{scope}</b> at <code>{resource}</code> on your behalf.</p>\
         <p>Answers go to <code>{redirect}</code>.</p>\
         <form method=post action=/oauth/authorize>\
         <input type=hidden name=id value=\"{id}\"><input type=hidden name=csrf value=\"{csrf}\">\
         {sign_in} <button name=decision value=deny>Deny</button></form>",
        client = escape(&c.client_name),
        resource = escape(&c.resource),
        redirect = escape(&c.redirect_uri),
        id = escape(&c.id),
        csrf = escape(&c.csrf),
    )
}

/// HTML-escapes text from clients (names, URIs) before it reaches the page.
pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}
