//! `subscriptions/listen`: a modern client's long-lived notification stream.
//!
//! For a legacy server berth is the subscription: it listens to the server's
//! change notifications (shared by every client) and forwards the kinds this
//! client opted into, tagged with the listen request's id. For a modern server
//! the request is relayed and the server's tagged notifications come back.

use std::sync::Arc;

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use super::Front;
use super::modern::notification;
use super::reply::{self, Event};
use crate::era::meta;
use crate::front::CallerRef;
use crate::jsonrpc::{self, Request};
use crate::upstream::{Broadcast, Era, Upcall};

/// Opens the stream.
pub async fn open(front: Arc<Front>, req: Request, caller: &CallerRef) -> Response {
    let pool = match front.pool_for(caller).await {
        Ok(p) => p,
        Err(err) => return reply::error(StatusCode::OK, Some(&req.id), &err),
    };
    let ready = match pool.ready().await {
        Ok(r) => r,
        Err(err) => return reply::error(StatusCode::OK, Some(&req.id), &err),
    };
    let sub_id: Value = serde_json::from_str(req.id.get()).unwrap_or(Value::Null);
    let (tx, rx) = mpsc::channel(64);
    if ready.profile.era == Era::Modern {
        let call = match ready.conn.call(&req.method, req.params.clone(), false) {
            Ok(c) => c,
            Err(err) => return reply::error(StatusCode::OK, Some(&req.id), &err),
        };
        tokio::spawn(relay_modern(call, req.id.clone(), tx));
    } else {
        let wanted = req.params.as_ref().and_then(|p| p.get("notifications")).cloned().unwrap_or_else(|| json!({}));
        let honored = honored(&wanted, &ready.profile.capabilities);
        if let Some(uris) = honored.get("resourceSubscriptions").and_then(Value::as_array) {
            for uri in uris {
                ready.conn.notify_request_and_forget("resources/subscribe", json!({"uri": uri}));
            }
        }
        let events = pool.subscribe();
        let ack = json!({"notifications": honored, "_meta": {meta::SUBSCRIPTION_ID: sub_id}});
        let first = Event::message(notification("notifications/subscriptions/acknowledged", &ack));
        // A fresh channel always has room for the first event.
        let _ = tx.try_send(first);
        tokio::spawn(forward(events, honored, sub_id, tx, req.id.clone(), front.closing()));
    }
    reply::stream(None, rx, front.config.keepalive, None)
}

/// The part of the client's filter this server can honour.
fn honored(wanted: &Value, caps: &Value) -> Value {
    let mut out = serde_json::Map::new();
    let on = |k: &str| wanted.get(k).and_then(Value::as_bool).unwrap_or(false);
    let cap = |path: &str| caps.pointer(path).and_then(Value::as_bool).unwrap_or(false);
    for (key, path) in [
        ("toolsListChanged", "/tools/listChanged"),
        ("promptsListChanged", "/prompts/listChanged"),
        ("resourcesListChanged", "/resources/listChanged"),
    ] {
        if on(key) && cap(path) {
            out.insert(key.into(), true.into());
        }
    }
    if let Some(uris) = wanted.get("resourceSubscriptions").filter(|_| cap("/resources/subscribe")) {
        out.insert("resourceSubscriptions".into(), uris.clone());
    }
    Value::Object(out)
}

fn wants(honored: &Value, ev: &Broadcast) -> bool {
    let on = |k: &str| honored.get(k).and_then(Value::as_bool).unwrap_or(false);
    match ev.method.as_str() {
        "notifications/tools/list_changed" => on("toolsListChanged"),
        "notifications/prompts/list_changed" => on("promptsListChanged"),
        "notifications/resources/list_changed" => on("resourcesListChanged"),
        "notifications/resources/updated" => {
            let uri = ev.params.as_ref().and_then(|p| p.get("uri"));
            let subs = honored.get("resourceSubscriptions").and_then(Value::as_array);
            matches!((uri, subs), (Some(u), Some(s)) if s.contains(u))
        }
        _ => false,
    }
}

async fn forward(
    mut events: broadcast::Receiver<Arc<Broadcast>>,
    honored: Value,
    sub_id: Value,
    tx: mpsc::Sender<Event>,
    id: Box<serde_json::value::RawValue>,
    mut closing: watch::Receiver<bool>,
) {
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = tx.closed() => return,
            _ = async { let _ = closing.wait_for(|c| *c).await; } => {
                // Graceful closure: the listen request's own response ends the stream.
                let done = json!({"resultType": "complete", "_meta": {meta::SUBSCRIPTION_ID: sub_id}});
                let _ = tx.send(Event::last(jsonrpc::response(&id, &Ok(jsonrpc::to_raw(&done))), StatusCode::OK)).await;
                return;
            }
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "listener fell behind; notifications dropped");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if !wants(&honored, &ev) {
            continue;
        }
        let mut params = ev.params.clone().unwrap_or_else(|| json!({}));
        if let Value::Object(p) = &mut params {
            let m = p.entry("_meta").or_insert_with(|| json!({}));
            m[meta::SUBSCRIPTION_ID] = sub_id.clone();
        }
        if tx.send(Event::message(notification(&ev.method, &params))).await.is_err() {
            return;
        }
    }
}

async fn relay_modern(mut call: crate::upstream::Call, id: Box<serde_json::value::RawValue>, tx: mpsc::Sender<Event>) {
    loop {
        let up = tokio::select! {
            up = call.next() => up,
            _ = tx.closed() => return,
        };
        let ev = match up {
            Upcall::Tagged { method, params } => Event::message(notification(&method, &params)),
            Upcall::Done(outcome) => Event::last(jsonrpc::response(&id, &outcome), StatusCode::OK),
            _ => continue,
        };
        let last = ev.last;
        if tx.send(ev).await.is_err() || last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honours_only_what_the_server_supports() {
        let caps = json!({"tools": {"listChanged": true}, "resources": {"subscribe": false}});
        let wanted = json!({"toolsListChanged": true, "promptsListChanged": true, "resourceSubscriptions": ["a"]});
        assert_eq!(honored(&wanted, &caps), json!({"toolsListChanged": true}));
    }

    #[test]
    fn filters_by_kind_and_uri() {
        let h = json!({"toolsListChanged": true, "resourceSubscriptions": ["test://a"]});
        let ev = |m: &str, p: Option<Value>| Broadcast { method: m.into(), params: p };
        assert!(wants(&h, &ev("notifications/tools/list_changed", None)));
        assert!(!wants(&h, &ev("notifications/prompts/list_changed", None)));
        assert!(wants(&h, &ev("notifications/resources/updated", Some(json!({"uri": "test://a"})))));
        assert!(!wants(&h, &ev("notifications/resources/updated", Some(json!({"uri": "test://b"})))));
    }
}
