//! `/mcp/{name}` (latest) and `/mcp/{name}@{version}`: each connector's MCP
//! endpoint, found in the catalog and started on demand; `/mcp/bundle/{name}`:
//! each bundle's. A connector's namespace is reverse-DNS (it has a dot), so
//! no connector name starts with `bundle/`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::any;
use berth_catalog::{StoreError, VersionRef};
use http::StatusCode;

use super::AppState;
use crate::front::{Caller, bad};
use crate::hosting::HostingError;
use crate::jsonrpc::code;

/// Where bundles live under `/mcp/`.
const BUNDLE: &str = "bundle/";

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/mcp/{*target}", any(serve))
}

async fn serve(State(app): State<Arc<AppState>>, Path(target): Path<String>, mut req: Request) -> Response {
    if let Some(auth) = &app.auth {
        match super::auth::check(auth, req.headers(), &target) {
            Ok(claims) => {
                req.extensions_mut().insert(Caller { user: claims.sub, client_id: claims.client_id });
            }
            Err(refused) => return refused,
        }
    }
    let (name, endpoint) = if let Some(bundle) = target.strip_prefix(BUNDLE) {
        (target.as_str(), app.hosting.bundle(bundle).await)
    } else {
        let (name, version) = match target.rsplit_once('@') {
            Some((name, version)) => (name, VersionRef::parse(version)),
            None => (target.as_str(), VersionRef::Latest),
        };
        (name, app.hosting.endpoint(name, &version).await)
    };
    match endpoint {
        Ok(endpoint) => endpoint.front.clone().handle(req).await,
        Err(HostingError::Store(StoreError::NotFound(what))) => {
            bad(StatusCode::NOT_FOUND, code::INVALID_REQUEST, format!("no connector {what} in this catalog"))
        }
        Err(e @ HostingError::NoBundle(_)) => bad(StatusCode::NOT_FOUND, code::INVALID_REQUEST, e.to_string()),
        Err(e @ HostingError::Deleted(_)) => bad(StatusCode::GONE, code::INVALID_REQUEST, e.to_string()),
        Err(e) => {
            tracing::warn!(connector = name, error = %e, "cannot serve connector");
            bad(StatusCode::SERVICE_UNAVAILABLE, code::SERVER_UNAVAILABLE, e.to_string())
        }
    }
}
