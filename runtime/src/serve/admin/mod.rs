//! The admin API (`/admin/v1`): publish, inspect and withdraw connectors,
//! their secrets, pins and user policies, bundles, instances and the audit trail.
//! Guarded by the admin bearer token or an admin personal access token.
//!
//! Every route is registered through utoipa's router from its handler's
//! annotation, so `/admin/v1/openapi.json` describes exactly what is served.
//! A connector's name holds one `/` (`io.github.acme/tickets`), so its
//! routes spell both halves out: `/admin/v1/connectors/{namespace}/{name}/…`.

mod audit;
mod bundles;
mod connectors;
mod doc;
mod extract;
mod instances;
mod pins;
mod policies;
mod secrets;
mod settings;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::response::Response;
use axum::routing::get;
use http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) use extract::{Admin, ApiPath, ApiQuery, json_object};
pub use settings::ServedSettings;

use super::{AppState, json_error};

/// Largest manifest accepted.
const MAX_MANIFEST: usize = 1 << 20;

/// Where the admin API lives.
const PREFIX: &str = "/admin/v1/";

pub(super) fn routes() -> Router<Arc<AppState>> {
    let (router, api) = OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .routes(routes!(connectors::list, connectors::publish))
        .routes(routes!(connectors::versions))
        .routes(routes!(connectors::versions_listed))
        .routes(routes!(connectors::version))
        .routes(routes!(connectors::set_status))
        .routes(routes!(secrets::list))
        .routes(routes!(secrets::put, secrets::delete))
        .routes(routes!(policies::list))
        .routes(routes!(policies::put, policies::delete))
        .routes(routes!(pins::list))
        .routes(routes!(pins::approve))
        .routes(routes!(instances::list))
        .routes(routes!(instances::drain))
        .routes(routes!(instances::kill))
        .routes(routes!(audit::query))
        .routes(routes!(audit::export))
        .routes(routes!(super::providers::list))
        .routes(routes!(super::providers::upsert, super::providers::remove))
        .routes(routes!(super::tokens::admin_list, super::tokens::admin_create))
        .routes(routes!(super::tokens::admin_revoke))
        .routes(routes!(super::groups::list))
        .routes(routes!(super::groups::add, super::groups::remove))
        .routes(routes!(bundles::list))
        .routes(routes!(bundles::get, bundles::put, bundles::delete))
        .routes(routes!(settings::get, settings::patch))
        .routes(routes!(super::users::list))
        .routes(routes!(super::users::get))
        .routes(routes!(super::users::offboard))
        .split_for_parts();
    let document = Arc::new(doc::finish(api));
    router
        // Public: it describes the API, and holds nothing a caller could use.
        .route("/admin/v1/openapi.json", get(move || async move { Json(document.as_ref().clone()) }))
        .layer(DefaultBodyLimit::max(MAX_MANIFEST))
}

/// Refuses a request without the admin bearer token.
pub(super) fn authorize(app: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !token.is_empty() && Sha256::digest(token.as_bytes()).as_slice() == app.admin_token_sha256 {
        return Ok(());
    }
    if token.starts_with(berth_oauth::PAT_PREFIX)
        && let Some(auth) = &app.auth
    {
        return match auth.pats.verify(token, berth_oauth::PatUse::Admin) {
            Ok(pat) if pat.admin_via.as_ref().is_some_and(|g| !still_in(app, &pat.user, g)) => Err(json_error(
                StatusCode::FORBIDDEN,
                format!(
                    "{} is no longer in {}, the group this admin token was made through",
                    pat.user,
                    pat.admin_via.as_deref().unwrap_or_default()
                ),
                None,
            )),
            Ok(pat) => {
                tracing::debug!(user = %pat.user, pat = %pat.id, "admin API call with a personal access token");
                Ok(())
            }
            Err(e) => Err(json_error(StatusCode::FORBIDDEN, e, None)),
        };
    }
    let mut res = json_error(
        StatusCode::UNAUTHORIZED,
        "the admin API needs `Authorization: Bearer <admin token or admin personal access token>`",
        None,
    );
    res.headers_mut().insert(header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer realm=\"berth-admin\""));
    Err(res)
}

/// Whether `user` is in `group` now.
fn still_in(app: &AppState, user: &str, group: &str) -> bool {
    app.groups.as_ref().is_some_and(|g| g.of(user).contains(group))
}

/// Unknown admin paths answer in the API's error shape, like every other
/// admin error; `None` for paths outside the admin API.
pub(super) fn not_found(path: &str) -> Option<Response> {
    path.starts_with(PREFIX).then(|| json_error(StatusCode::NOT_FOUND, format!("no admin endpoint {path}"), None))
}

/// Lets a connector name sent as one percent-encoded segment
/// (`io.github.acme%2Ftickets`, as URL builders encode it) reach the routes
/// that spell out `{namespace}/{name}`, as it did when they were one wildcard.
pub(super) async fn decode_connector_name(mut req: Request) -> Request {
    if let Some(fixed) = decoded_name_path(req.uri().path()) {
        let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        if let Ok(uri) = format!("{fixed}{query}").parse() {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// The path with the first `%2F` of the connector segment decoded, when
/// that segment has one.
fn decoded_name_path(path: &str) -> Option<String> {
    const CONNECTORS: &str = "/admin/v1/connectors/";
    let rest = path.strip_prefix(CONNECTORS)?;
    let segment = rest.split('/').next().unwrap_or("");
    let at = segment.to_ascii_lowercase().find("%2f")?;
    Some(format!("{CONNECTORS}{}/{}", &rest[..at], &rest[at + 3..]))
}

#[cfg(test)]
mod tests {
    use super::decoded_name_path;

    #[test]
    fn an_encoded_slash_in_the_name_segment_is_decoded_once() {
        assert_eq!(
            decoded_name_path("/admin/v1/connectors/io.github.acme%2Ftickets/policies/alice").as_deref(),
            Some("/admin/v1/connectors/io.github.acme/tickets/policies/alice")
        );
        assert_eq!(
            decoded_name_path("/admin/v1/connectors/a.b%2fc").as_deref(),
            Some("/admin/v1/connectors/a.b/c"),
            "lower-case escapes too"
        );
        assert_eq!(decoded_name_path("/admin/v1/connectors/a.b/c/tools/x%2Fy"), None, "only the name segment");
        assert_eq!(decoded_name_path("/v0/servers/a.b%2Fc"), None);
    }
}
