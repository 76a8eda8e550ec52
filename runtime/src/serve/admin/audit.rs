//! The audit trail through the admin API: a filtered query, and an export
//! as newline-delimited JSON for log pipelines.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::super::schema::ErrorBody;
use super::super::{AppState, json_error};
use super::{Admin, ApiQuery};
use crate::audit::{AuditQuery, AuditRecord, Decision};

/// The most records one answer holds (the store's cap).
const MAX_LIMIT: u32 = 10_000;

/// Most records an export holds when no `limit` is given.
const EXPORT_LIMIT: u32 = MAX_LIMIT;

/// Filters of a query; all optional.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Exactly this user.
    user: Option<String>,
    /// Exactly this `name@version`, or any version of `name`.
    connector: Option<String>,
    /// Exactly this tool.
    tool: Option<String>,
    /// What the policy decided.
    decision: Option<Decision>,
    /// Records at or after this time (milliseconds since the epoch).
    since_ms: Option<i64>,
    /// Most records, newest first (default 100 for a query, 10 000 for an export; at most 10 000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// `jsonl` answers newline-delimited JSON, as the export does (query only).
    #[param(inline)]
    format: Option<AuditFormat>,
}

/// How records are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AuditFormat {
    /// A JSON array.
    Json,
    /// One JSON object per line.
    Jsonl,
}

impl AuditParams {
    fn query(&self, default_limit: Option<u32>) -> AuditQuery {
        AuditQuery {
            user: self.user.clone(),
            connector: self.connector.clone(),
            tool: self.tool.clone(),
            decision: self.decision,
            since_ms: self.since_ms,
            limit: self.limit.or(default_limit),
        }
    }
}

/// Tool call records, newest first.
#[utoipa::path(
    get, path = "/admin/v1/audit", tag = "audit", operation_id = "queryAudit",
    params(AuditParams),
    responses(
        (status = 200, description = "Matching records, newest first", content(
            (Vec<AuditRecord> = "application/json"),
            (String = "application/jsonl"),
        )),
        (status = 400, description = "A malformed filter", body = ErrorBody),
        (status = 404, description = "Auditing is off", body = ErrorBody),
    )
)]
pub(crate) async fn query(_: Admin, State(app): State<Arc<AppState>>, ApiQuery(p): ApiQuery<AuditParams>) -> Response {
    let records = match records(&app, &p, None).await {
        Ok(r) => r,
        Err(res) => return res,
    };
    if p.format == Some(AuditFormat::Jsonl) {
        return ([(header::CONTENT_TYPE, "application/jsonl")], lines(records.iter())).into_response();
    }
    Json(records).into_response()
}

/// Tool call records as newline-delimited JSON, oldest first: the newest
/// `limit` (default 10 000) matching the filters, ready to append to a log
/// pipeline; page forward with `since_ms`.
#[utoipa::path(
    get, path = "/admin/v1/audit/export", tag = "audit", operation_id = "exportAudit",
    params(AuditParams),
    responses(
        (status = 200, description = "One record per line, oldest first", content(
            (String = "application/x-ndjson"),
        )),
        (status = 400, description = "A malformed filter", body = ErrorBody),
        (status = 404, description = "Auditing is off", body = ErrorBody),
    )
)]
pub(crate) async fn export(_: Admin, State(app): State<Arc<AppState>>, ApiQuery(p): ApiQuery<AuditParams>) -> Response {
    match records(&app, &p, Some(EXPORT_LIMIT)).await {
        Ok(records) => ([(header::CONTENT_TYPE, "application/x-ndjson")], lines(records.iter().rev())).into_response(),
        Err(res) => res,
    }
}

async fn records(app: &AppState, p: &AuditParams, default_limit: Option<u32>) -> Result<Vec<AuditRecord>, Response> {
    if p.limit.is_some_and(|l| !(1..=MAX_LIMIT).contains(&l)) {
        return Err(json_error(StatusCode::BAD_REQUEST, format!("limit must be from 1 to {MAX_LIMIT}"), None));
    }
    let Some(store) = &app.audit else { return Err(json_error(StatusCode::NOT_FOUND, "auditing is off", None)) };
    store.query(&p.query(default_limit)).await.map_err(|e| {
        tracing::error!(error = %e, "audit query failed");
        json_error(StatusCode::INTERNAL_SERVER_ERROR, "audit query failed; see the server log", None)
    })
}

fn lines<'a>(records: impl Iterator<Item = &'a AuditRecord>) -> String {
    records.filter_map(|r| serde_json::to_string(r).ok()).map(|l| l + "\n").collect()
}
