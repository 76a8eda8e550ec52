//! Turning relayed messages into HTTP responses: one JSON body when the answer
//! comes at once, an SSE stream when the server has something to say first.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use tokio::sync::{mpsc, watch};

use crate::jsonrpc::{self, ErrorObject};

/// One message on its way to the client.
#[derive(Debug)]
pub struct Event {
    /// SSE event id (legacy sessions, for resumption).
    pub id: Option<String>,
    /// The JSON-RPC message.
    pub data: String,
    /// Whether this is the response that ends the request.
    pub last: bool,
    /// HTTP status if this final message is sent as a plain JSON body.
    pub status: StatusCode,
}

impl Event {
    /// An intermediate message (notification or server request).
    pub fn message(data: String) -> Self {
        Self { id: None, data, last: false, status: StatusCode::OK }
    }

    /// The final response.
    pub fn last(data: String, status: StatusCode) -> Self {
        Self { id: None, data, last: true, status }
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// A JSON-RPC error response with the given HTTP status.
pub fn error(status: StatusCode, id: Option<&serde_json::value::RawValue>, err: &ErrorObject) -> Response {
    let body = match id {
        Some(id) => jsonrpc::response(id, &Err(err.to_raw())),
        None => jsonrpc::error_without_id(err),
    };
    json(status, body)
}

/// `202 Accepted` with no body, for notifications and responses.
pub fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// Waits for the first event and answers with JSON if it is the last one,
/// else with an SSE stream of it and everything after. Without `sse`, the
/// client gets only the final message as JSON.
pub async fn respond(mut rx: mpsc::Receiver<Event>, sse: bool, keepalive: Duration) -> Response {
    let Some(first) = rx.recv().await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if first.last {
        return json(first.status, first.data);
    }
    if !sse {
        while let Some(ev) = rx.recv().await {
            if ev.last {
                return json(ev.status, ev.data);
            }
        }
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    stream(Some(first), rx, keepalive, None)
}

/// An SSE response carrying `first` and then everything from `rx` until the
/// last event, with comment keep-alives in quiet periods. With `closing`, the
/// stream also ends when berth shuts down.
pub fn stream(
    first: Option<Event>,
    rx: mpsc::Receiver<Event>,
    keepalive: Duration,
    closing: Option<watch::Receiver<bool>>,
) -> Response {
    let tick = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    let state = (first, rx, tick, closing, false);
    let body = futures_util::stream::unfold(state, |(first, mut rx, mut tick, mut closing, done)| async move {
        if done {
            return None;
        }
        if let Some(ev) = first {
            let last = ev.last;
            return Some((Ok::<_, Infallible>(encode(&ev)), (None, rx, tick, closing, last)));
        }
        let shutdown = async {
            match closing.as_mut() {
                Some(c) => {
                    let _ = c.wait_for(|closing| *closing).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => { let last = ev.last; Some((Ok(encode(&ev)), (None, rx, tick, closing, last))) }
                None => None,
            },
            _ = tick.tick() => Some((Ok(Bytes::from_static(b":\n\n")), (None, rx, tick, closing, false))),
            _ = shutdown => None,
        }
    });
    let mut res = Response::new(Body::from_stream(body));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-transform"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

fn encode(ev: &Event) -> Bytes {
    let mut s = String::with_capacity(ev.data.len() + 32);
    if let Some(id) = &ev.id {
        s.push_str("id: ");
        s.push_str(id);
        s.push('\n');
    }
    s.push_str("event: message\ndata: ");
    s.push_str(&ev.data);
    s.push_str("\n\n");
    Bytes::from(s)
}
