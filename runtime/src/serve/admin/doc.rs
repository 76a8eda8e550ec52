//! The admin API's OpenAPI 3.1 document, served at `/admin/v1/openapi.json`.
//!
//! Its paths and operations come from the handlers' `#[utoipa::path]`
//! annotations, collected by the same router that serves them, so a route
//! cannot exist without being documented or be documented at a path it is
//! not served at. What every operation shares (the bearer scheme, the 401 and
//! 403 answers of the guard) is added here once.

use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use crate::serve::schema::ErrorBody;

/// Name of the security scheme in the document (also spelt out in `ApiDoc`).
const SCHEME: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "berth admin API",
        description = "Publish and withdraw connectors, manage their secrets, tool pins and user policies, \
                       compose bundles, see and stop instances, read the audit trail, and manage OAuth providers and personal \
                       access tokens. Every operation needs `Authorization: Bearer` with the admin token or \
                       an admin personal access token.",
    ),
    security(("bearer" = [])),
    components(schemas(ErrorBody)),
    tags(
        (name = "connectors", description = "The catalog: publish, list, deprecate, yank"),
        (name = "secrets", description = "Write-only environment values of a connector"),
        (name = "policies", description = "Per-user tool policies"),
        (name = "tools", description = "Tool pinning: definitions seen and approved"),
        (name = "instances", description = "Running servers"),
        (name = "audit", description = "One record per tool call"),
        (name = "providers", description = "Upstream OAuth providers of the credential broker"),
        (name = "tokens", description = "Personal access tokens"),
        (name = "groups", description = "Group memberships, for group tool policies"),
        (name = "users", description = "Everyone berth knows of; offboarding"),
        (name = "settings", description = "What berth runs with; some settings change at run time"),
        (name = "bundles", description = "Virtual servers at /mcp/bundle/{name}: chosen tools of several connectors"),
    )
)]
pub(super) struct ApiDoc;

/// Completes the document the router collected: the bearer scheme, and the
/// guard's 401 and 403 on every operation.
pub(super) fn finish(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = api.components.get_or_insert_with(Default::default);
    let bearer = Http::builder()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some("The admin token (`DATA_DIR/admin-token`) or an admin personal access token"))
        .build();
    components.security_schemes.insert(SCHEME.to_owned(), RefOr::T(SecurityScheme::Http(bearer)));
    let error = |what: &str| {
        ResponseBuilder::new()
            .description(what)
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
            .build()
    };
    components.responses.insert("Unauthorized".into(), RefOr::T(error("No admin bearer token")));
    components
        .responses
        .insert("Forbidden".into(), RefOr::T(error("A personal access token that is unknown, expired or not admin")));
    for item in api.paths.paths.values_mut() {
        let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for op in ops.into_iter().flatten() {
            let responses = &mut op.responses.responses;
            responses.entry("401".into()).or_insert_with(|| RefOr::Ref(Ref::from_response_name("Unauthorized")));
            responses.entry("403".into()).or_insert_with(|| RefOr::Ref(Ref::from_response_name("Forbidden")));
        }
    }
    api
}
