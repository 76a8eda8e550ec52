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

use super::{AppState, json_error, registry_entry, split_versions};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v0/servers", get(list)).route("/v0/servers/{*tail}", get(one))
}

/// Query parameters of a listing.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) struct ListParams {
    cursor: Option<String>,
    limit: Option<u32>,
    search: Option<String>,
    /// `latest` lists only each server's latest version.
    version: Option<String>,
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

pub(crate) async fn list(State(app): State<Arc<AppState>>, Query(params): Query<ListParams>) -> Response {
    let query = match params.query() {
        Ok(q) => q,
        Err(r) => return r,
    };
    match app.hosting.store().list(&query).await {
        Ok(page) => Json(json!({
            "servers": page.entries.iter().map(registry_entry).collect::<Vec<_>>(),
            "metadata": {"count": page.entries.len(), "nextCursor": page.next_cursor},
        }))
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
