//! Extractors for admin handlers whose refusals are the API's JSON error
//! body: axum's own answer a malformed path or query in plain text, which
//! would break the promise the OpenAPI document makes about every error.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query};
use axum::response::Response;
use http::StatusCode;
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::super::{AppState, json_error};

/// The caller, known to be an admin (the admin bearer token or an admin
/// personal access token). First among a handler's arguments, so a stranger
/// learns nothing from how the rest of the request is judged.
pub(crate) struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<AppState>) -> Result<Self, Response> {
        super::authorize(app, &parts.headers).map(|()| Admin)
    }
}

/// Path parameters, or a JSON 400.
pub(crate) struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(Self(t)),
            Err(e) => Err(json_error(StatusCode::BAD_REQUEST, e.body_text(), None)),
        }
    }
}

/// Query parameters, or a JSON 400.
pub(crate) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(t)) => Ok(Self(t)),
            Err(e) => Err(json_error(StatusCode::BAD_REQUEST, e.body_text(), None)),
        }
    }
}

/// A JSON object body as `T`. serde's derived structs also accept a JSON
/// array of their fields in order, which no caller means and the OpenAPI
/// document does not allow; this refuses anything but an object.
pub(crate) fn json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err("expected a JSON object".to_owned());
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::json_object;
    use crate::serve::schema::PolicyBody;

    #[test]
    fn only_an_object_is_a_body() {
        #[derive(serde::Deserialize)]
        struct Value {
            #[allow(dead_code)]
            value: String,
        }
        assert!(json_object::<Value>(br#"{"value": "x"}"#).is_ok());
        assert!(serde_json::from_slice::<Value>(br#"["x"]"#).is_ok(), "what serde alone lets through");
        assert!(json_object::<Value>(br#"["x"]"#).is_err());
        assert!(json_object::<PolicyBody>(br#"{"annotations": [null, null]}"#).is_err(), "nor in a nested field");
        assert!(json_object::<PolicyBody>(br#"{"annotations": {"readOnlyHint": true}}"#).is_ok());
    }
}
