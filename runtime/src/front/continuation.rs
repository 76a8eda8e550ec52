//! Multi round-trip requests for legacy servers.
//!
//! A legacy server asks for input (elicitation, sampling, roots) in the middle
//! of a call and waits. A modern client cannot be asked mid-call: it gets an
//! `InputRequiredResult` and retries. Between the two, berth parks the live
//! call here under a random handle and gives the client a `requestState`
//! that names the handle, binds it to the method and target, expires, and is
//! MAC'd with a per-process key, so it cannot be forged, moved to another
//! request, or replayed after use.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use rand::RngCore;
use serde_json::value::RawValue;
use sha2::Sha256;
use tokio::time::Instant;

use crate::jsonrpc::{ErrorObject, code};
use crate::upstream::{Call, Connection};

type HmacSha256 = Hmac<Sha256>;

/// A call waiting for the client's input.
pub struct Parked {
    /// The live call at the server.
    pub call: Call,
    /// The server it runs on.
    pub conn: Connection,
    /// Input keys given to the client → the server's request ids.
    pub asked: Vec<(String, Box<RawValue>)>,
    /// The method and target the retry must repeat.
    pub binding: String,
    expires: Instant,
}

/// Parked calls, with the key that protects their handles.
pub struct Continuations {
    key: [u8; 32],
    ttl: Duration,
    parked: Mutex<HashMap<[u8; 16], Parked>>,
}

/// What a retry must match: method and target name.
pub fn binding(method: &str, name: Option<&str>) -> String {
    format!("{method}\u{0}{}", name.unwrap_or(""))
}

impl Continuations {
    /// An empty table; parked calls expire after `ttl`.
    pub fn new(ttl: Duration) -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self { key, ttl, parked: Mutex::new(HashMap::new()) }
    }

    /// Parks a call and returns the `requestState` for the client.
    pub fn park(&self, call: Call, conn: Connection, asked: Vec<(String, Box<RawValue>)>, binding: String) -> String {
        let mut handle = [0u8; 16];
        rand::rng().fill_bytes(&mut handle);
        let expires_at = Instant::now() + self.ttl;
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
            + self.ttl.as_secs();
        let state = self.seal(&handle, secs, &binding);
        self.parked.lock().insert(handle, Parked { call, conn, asked, binding, expires: expires_at });
        state
    }

    /// Takes back the call a `requestState` names, if it is genuine, unexpired,
    /// presented on the same method and target, and not used before.
    pub fn resume(&self, state: &str, binding: &str) -> Result<Parked, ErrorObject> {
        let invalid = |why: &str| ErrorObject::new(code::INVALID_PARAMS, format!("invalid requestState: {why}"));
        let bytes = URL_SAFE_NO_PAD.decode(state).map_err(|_| invalid("not base64url"))?;
        if bytes.len() != 16 + 8 + 32 {
            return Err(invalid("wrong length"));
        }
        let (handle, rest) = bytes.split_at(16);
        let (secs, tag) = rest.split_at(8);
        let secs = u64::from_be_bytes(secs.try_into().map_err(|_| invalid("wrong length"))?);
        let mac = self.mac(handle, secs, binding);
        mac.verify_slice(tag).map_err(|_| invalid("it does not belong to this request"))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if now > secs {
            return Err(invalid("expired"));
        }
        let handle: [u8; 16] = handle.try_into().map_err(|_| invalid("wrong length"))?;
        let parked = self.parked.lock().remove(&handle).ok_or_else(|| invalid("already used or abandoned"))?;
        if parked.binding != binding {
            return Err(invalid("it does not belong to this request"));
        }
        Ok(parked)
    }

    /// Ends calls whose client never came back: the server's pending requests
    /// get an error and the call is cancelled.
    pub fn reap(&self) {
        let now = Instant::now();
        let expired: Vec<Parked> = {
            let mut parked = self.parked.lock();
            let keys: Vec<[u8; 16]> = parked.iter().filter(|(_, p)| p.expires <= now).map(|(k, _)| *k).collect();
            keys.into_iter().filter_map(|k| parked.remove(&k)).collect()
        };
        for p in expired {
            let err = ErrorObject::new(code::TIMEOUT, "the client did not provide the requested input in time");
            for (_, id) in &p.asked {
                p.conn.respond(id, &Err(err.to_raw()));
            }
            tracing::info!(asked = p.asked.len(), "abandoned input request expired; call cancelled");
            drop(p.call);
        }
    }

    fn mac(&self, handle: &[u8], secs: u64, binding: &str) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(handle);
        mac.update(&secs.to_be_bytes());
        mac.update(binding.as_bytes());
        mac
    }

    fn seal(&self, handle: &[u8], secs: u64, binding: &str) -> String {
        let tag = self.mac(handle, secs, binding).finalize().into_bytes();
        let mut bytes = Vec::with_capacity(16 + 8 + 32);
        bytes.extend_from_slice(handle);
        bytes.extend_from_slice(&secs.to_be_bytes());
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }
}
