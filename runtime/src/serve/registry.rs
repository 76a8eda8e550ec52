//! The registry read API, shaped like the official MCP registry's
//! (`/v0/servers…`), so existing registry clients can browse berth's catalog.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_catalog::store::ListQuery;
use berth_catalog::{StoreError, VersionRef};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::schema::{ListMetadata, RegistryEntry, ServerList};
use super::{AppState, json_error, registry_entry, split_versions};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v0/servers", get(list)).route("/v0/servers/{*tail}", get(one))
}

/// Query parameters of a listing.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "snake_case")]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
    /// Entries per page, 1 to 100.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// Names containing this text.
    search: Option<String>,
    /// `latest` lists only each server's latest version.
    #[param(pattern = "^latest$")]
    version: Option<String>,
    /// Withdrawn versions too (also spelt `includeDeleted`).
    #[serde(default, alias = "includeDeleted")]
    include_deleted: bool,
}

impl ListParams {
    pub(crate) fn query(self) -> Result<ListQuery, Response> {
        if let Some(v) = self.version.as_deref().filter(|v| *v != "latest") {
            return Err(json_error(
                StatusCode::BAD_REQUEST,
                format!("version filter must be \"latest\", got \"{v}\""),
                None,
            ));
        }
        if self.limit.is_some_and(|l| !(1..=100).contains(&l)) {
            return Err(json_error(StatusCode::BAD_REQUEST, "limit must be from 1 to 100", None));
        }
        Ok(ListQuery {
            cursor: self.cursor,
            limit: self.limit,
            search: self.search,
            latest_only: self.version.is_some(),
            include_deleted: self.include_deleted,
        })
    }
}

async fn list(State(app): State<Arc<AppState>>, Query(params): Query<ListParams>) -> Response {
    list_page(&app, params).await
}

/// A page of the catalog, for the registry and admin APIs alike.
pub(crate) async fn list_page(app: &AppState, params: ListParams) -> Response {
    let query = match params.query() {
        Ok(q) => q,
        Err(r) => return r,
    };
    match app.hosting.store().list(&query).await {
        Ok(page) => Json(ServerList {
            metadata: ListMetadata { count: page.entries.len(), next_cursor: page.next_cursor },
            servers: page.entries.iter().map(RegistryEntry::from).collect(),
        })
        .into_response(),
        Err(e) => store_error(e),
    }
}

async fn one(State(app): State<Arc<AppState>>, Path(tail): Path<String>) -> Response {
    let store = app.hosting.store();
    match split_versions(&tail) {
        (name, None) => found(store.get(name, &VersionRef::Latest).await.map(|e| registry_entry(&e))),
        (name, Some("")) => match store.versions(name).await {
            Ok(all) => {
                let servers: Vec<_> = all.iter().map(registry_entry).collect();
                Json(json!({"servers": servers, "metadata": {"count": servers.len(), "nextCursor": null}}))
                    .into_response()
            }
            Err(e) => store_error(e),
        },
        (name, Some(v)) => found(store.get(name, &VersionRef::parse(v)).await.map(|e| registry_entry(&e))),
    }
}

fn found(r: Result<serde_json::Value, StoreError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => store_error(e),
    }
}

pub(crate) fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(_) => json_error(StatusCode::NOT_FOUND, e, None),
        StoreError::AlreadyPublished { .. } => json_error(StatusCode::CONFLICT, e, None),
        e => {
            tracing::error!(error = %e, "catalog error");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "catalog error; see the server log", None)
        }
    }
}
