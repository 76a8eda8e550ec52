//! `/admin/v1/settings`: what berth runs with, and the settings an admin
//! may change while it runs.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::super::schema::{ErrorBody, FixedSettings, SettingsBody};
use super::super::{AppState, json_error, store_failed};
use super::{Admin, json_object};
use crate::settings::{RuntimePatch, RuntimeSettings};

/// The settings of a running `berth serve`.
pub struct ServedSettings {
    /// Fixed at start.
    pub fixed: FixedSettings,
    /// Changeable at run time.
    pub runtime: Arc<RuntimeSettings>,
}

impl ServedSettings {
    fn body(&self) -> SettingsBody {
        SettingsBody {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            fixed: self.fixed.clone(),
            runtime: self.runtime.values(),
        }
    }
}

fn served(app: &AppState) -> Result<&ServedSettings, Response> {
    app.settings.as_deref().ok_or_else(|| json_error(StatusCode::NOT_FOUND, "no settings are kept here", None))
}

/// Every setting: the ones fixed at start and the ones changeable now.
#[utoipa::path(
    get, path = "/admin/v1/settings", tag = "settings", operation_id = "getSettings",
    responses(
        (status = 200, description = "The settings", body = SettingsBody),
        (status = 404, description = "No settings are kept here", body = ErrorBody),
    )
)]
pub(crate) async fn get(_: Admin, State(app): State<Arc<AppState>>) -> Response {
    match served(&app) {
        Ok(s) => Json(s.body()).into_response(),
        Err(r) => r,
    }
}

/// Changes run-time settings; the others are named in the refusal.
#[utoipa::path(
    patch, path = "/admin/v1/settings", tag = "settings", operation_id = "patchSettings",
    request_body = RuntimePatch,
    responses(
        (status = 200, description = "The settings after the change", body = SettingsBody),
        (status = 400, description = "Not a change berth can make at run time", body = ErrorBody),
        (status = 404, description = "No settings are kept here", body = ErrorBody),
    )
)]
pub(crate) async fn patch(_: Admin, State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let s = match served(&app) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let patch: RuntimePatch = match json_object(&body) {
        Ok(p) => p,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, refusal(&s.fixed, &body, e), None),
    };
    match s.runtime.apply(&patch).await {
        Ok(_) => Json(s.body()).into_response(),
        Err(e) => store_failed("settings", e),
    }
}

/// Why a patch was refused: a setting fixed at start says how to change
/// it; anything else gets serde's reason.
fn refusal(fixed: &FixedSettings, body: &[u8], parse_error: String) -> String {
    let fixed = serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| {
        let names = serde_json::to_value(fixed).ok()?;
        v.as_object()?.keys().find(|k| names.get(k.as_str()).is_some()).cloned()
    });
    match fixed {
        Some(name) => format!(
            "{name} is set at start (a flag, the environment or berth.toml) and changes with a restart; \
             only auditArguments changes at run time"
        ),
        None => format!("expected {{\"auditArguments\": true|false}}: {parse_error}"),
    }
}
