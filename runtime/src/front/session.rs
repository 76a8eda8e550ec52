//! Legacy (2025-03-26 … 2025-11-25) sessions.
//!
//! A legacy client's session is berth's, not the server's: berth answers
//! `initialize` itself and many sessions share one handshaken server. The
//! session remembers what the client negotiated, the server requests relayed
//! to it and awaiting answers, its standalone GET stream, and a bounded log of
//! the events it was sent so a dropped stream can be resumed with
//! `Last-Event-ID`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rand::RngCore;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::reply::Event;
use crate::jsonrpc;
use crate::upstream::Connection;

/// Events kept per session for resumption.
const LOG_EVENTS: usize = 1024;
/// Bytes kept per session for resumption.
const LOG_BYTES: usize = 8 << 20;

/// One legacy client session.
pub struct Session {
    /// The `Mcp-Session-Id` (128 random bits, hex).
    pub id: String,
    /// Negotiated protocol version.
    pub version: String,
    /// The client's `Implementation`.
    pub client_info: Value,
    /// The client's capabilities.
    pub capabilities: Value,
    /// Who started it; only that user may use it.
    pub owner: super::CallerRef,
    /// The pool it uses (its own under `session` isolation).
    pub pool: std::sync::OnceLock<Arc<crate::pool::Pool>>,
    /// The instance of that pool it talks to.
    pub pin: crate::pool::Pin,
    /// Minimum log level the client asked for with `logging/setLevel`.
    pub log_level: Mutex<Option<String>>,
    /// Resource URIs the client subscribed to.
    pub resources: Mutex<HashSet<String>>,
    log: Mutex<EventLog>,
    get_stream: Mutex<Option<mpsc::Sender<Event>>>,
    relayed: Mutex<HashMap<String, Relayed>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<()>>>,
    next_stream: AtomicU64,
    next_request: AtomicU64,
    last_seen: Mutex<Instant>,
}

#[derive(Default)]
struct EventLog {
    entries: VecDeque<(u64, u64, String)>,
    bytes: usize,
    next_seq: HashMap<u64, u64>,
    /// POST streams resumed on the GET stream: their later events go there.
    resumed: HashSet<u64>,
}

/// Where a client's answer to a relayed request goes.
pub enum Relayed {
    /// Back to the server that asked, under its own id.
    Server(Connection, Box<RawValue>),
    /// To berth itself, which asked on a modern server's behalf (its
    /// `InputRequiredResult` turned into requests for a legacy client).
    Berth(oneshot::Sender<jsonrpc::Outcome>),
}

/// Stream 0 is the standalone GET stream; POST streams count from 1.
pub const GET_STREAM: u64 = 0;

impl Session {
    fn new(version: String, client_info: Value, capabilities: Value, owner: super::CallerRef) -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self {
            id: hex::encode(bytes),
            version,
            client_info,
            capabilities,
            owner,
            pool: Default::default(),
            pin: Default::default(),
            log_level: Mutex::new(None),
            resources: Mutex::new(HashSet::new()),
            log: Mutex::new(EventLog::default()),
            get_stream: Mutex::new(None),
            relayed: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            next_stream: AtomicU64::new(1),
            next_request: AtomicU64::new(1),
            last_seen: Mutex::new(Instant::now()),
        }
    }

    /// A new POST stream id.
    pub fn new_stream(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// Records an event sent on `stream`. If that stream was resumed on the
    /// GET stream the event is delivered there (under the log lock, so it
    /// cannot overtake the replay) and `None` is returned; otherwise the
    /// event is returned for the caller to send on its own stream.
    pub fn log_event(&self, stream: u64, data: String, last: bool) -> Option<Event> {
        let mut log = self.log.lock();
        let id = Self::append(&mut log, stream, &data);
        let ev = Event { id: Some(id), data, last, status: http::StatusCode::OK };
        if !log.resumed.contains(&stream) {
            return Some(ev);
        }
        if last {
            log.resumed.remove(&stream);
        }
        self.send_on_get_stream(ev);
        None
    }

    fn append(log: &mut EventLog, stream: u64, data: &str) -> String {
        let seq = log.next_seq.entry(stream).or_insert(0);
        *seq += 1;
        let seq = *seq;
        log.bytes += data.len();
        log.entries.push_back((stream, seq, data.to_owned()));
        while log.entries.len() > LOG_EVENTS || log.bytes > LOG_BYTES {
            match log.entries.pop_front() {
                Some((_, _, d)) => log.bytes -= d.len(),
                None => break,
            }
        }
        format!("{stream}-{seq}")
    }

    /// Makes `tx` the GET stream, first queuing the events of the stream
    /// named by `last_event_id` that came after it; the rest of that stream
    /// will follow on `tx`.
    pub fn open_get_stream(&self, tx: mpsc::Sender<Event>, last_event_id: Option<&str>) {
        let mut log = self.log.lock();
        *self.get_stream.lock() = Some(tx.clone());
        let Some((stream, seq)) = last_event_id.and_then(parse_event_id) else { return };
        if stream != GET_STREAM {
            log.resumed.insert(stream);
        }
        for (s, q, d) in &log.entries {
            if *s == stream && *q > seq {
                let _ = tx.try_send(Event { id: Some(format!("{s}-{q}")), ..Event::message(d.clone()) });
            }
        }
    }

    /// Sends an already logged event on the GET stream, if one is open.
    pub fn send_on_get_stream(&self, ev: Event) -> bool {
        let tx = self.get_stream.lock().clone();
        tx.is_some_and(|tx| tx.try_send(Event { last: false, ..ev }).is_ok())
    }

    /// Remembers a request sent to this client; returns berth's id for it.
    pub fn relay_request(&self, to: Relayed) -> String {
        let id = format!("berth-{}", self.next_request.fetch_add(1, Ordering::Relaxed));
        self.relayed.lock().insert(id.clone(), to);
        id
    }

    /// Where a client response goes.
    pub fn take_relayed(&self, id: &str) -> Option<Relayed> {
        self.relayed.lock().remove(id)
    }

    /// Registers an in-flight request by the client's id text; the receiver
    /// fires if the client cancels it.
    pub fn start_request(&self, client_id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.in_flight.lock().insert(client_id.to_owned(), tx);
        rx
    }

    /// Forgets a finished request.
    pub fn end_request(&self, client_id: &str) {
        self.in_flight.lock().remove(client_id);
    }

    /// Cancels a request at the client's word.
    pub fn cancel(&self, client_id: &str) -> bool {
        self.in_flight.lock().remove(client_id).map(|tx| tx.send(())).is_some()
    }

    /// Marks the session as used now.
    pub fn touch(&self) {
        *self.last_seen.lock() = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        if self.get_stream.lock().as_ref().is_some_and(|tx| !tx.is_closed()) || !self.in_flight.lock().is_empty() {
            return Duration::ZERO;
        }
        self.last_seen.lock().elapsed()
    }
}

fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (stream, seq) = id.split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

/// All live sessions.
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    max: usize,
    idle: Duration,
}

impl Sessions {
    /// A store holding at most `max` sessions, dropping those idle for `idle`.
    pub fn new(max: usize, idle: Duration) -> Self {
        Self { map: Mutex::new(HashMap::new()), max, idle }
    }

    /// Creates a session, unless the store is full.
    pub fn create(
        &self,
        version: String,
        client_info: Value,
        capabilities: Value,
        owner: super::CallerRef,
    ) -> Option<Arc<Session>> {
        let mut map = self.map.lock();
        if map.len() >= self.max {
            return None;
        }
        let s = Arc::new(Session::new(version, client_info, capabilities, owner));
        map.insert(s.id.clone(), s.clone());
        Some(s)
    }

    /// Looks a session up.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let s = self.map.lock().get(id).cloned();
        if let Some(s) = &s {
            s.touch();
        }
        s
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        self.map.lock().remove(id)
    }

    /// Drops sessions idle for too long.
    pub fn reap(&self) {
        let idle = self.idle;
        self.map.lock().retain(|_, s| s.idle_for() < idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replayed(s: &Session, last: &str) -> (mpsc::Receiver<Event>, Vec<String>) {
        let (tx, mut rx) = mpsc::channel(LOG_EVENTS + 10);
        s.open_get_stream(tx, Some(last));
        let mut got = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            got.push(ev.data);
        }
        (rx, got)
    }

    #[test]
    fn event_log_replays_one_stream_after_an_id_then_follows_it() {
        let s = Session::new("2025-11-25".into(), Value::Null, Value::Null, None);
        let a = s.log_event(1, "a".into(), false).unwrap();
        s.log_event(2, "other".into(), false);
        s.log_event(1, "b".into(), false);
        s.log_event(1, "c".into(), false);
        let (mut rx, got) = replayed(&s, a.id.as_deref().unwrap());
        assert_eq!(got, ["b", "c"]);
        assert!(s.log_event(1, "d".into(), true).is_none(), "a resumed stream continues on the GET stream");
        assert_eq!(rx.try_recv().unwrap().data, "d");
        assert!(s.log_event(2, "e".into(), false).is_some());
        assert!(replayed(&s, "garbage").1.is_empty());
        assert!(replayed(&s, "1-99").1.is_empty());
    }

    #[test]
    fn event_log_is_bounded() {
        let s = Session::new("2025-11-25".into(), Value::Null, Value::Null, None);
        for i in 0..(LOG_EVENTS + 10) {
            s.log_event(1, i.to_string(), false);
        }
        assert_eq!(replayed(&s, "1-0").1.len(), LOG_EVENTS);
    }

    #[test]
    fn session_ids_are_128_bit_and_distinct() {
        let store = Sessions::new(2, Duration::from_secs(60));
        let a = store.create("v".into(), Value::Null, Value::Null, None).unwrap();
        let b = store.create("v".into(), Value::Null, Value::Null, None).unwrap();
        assert_eq!(a.id.len(), 32);
        assert_ne!(a.id, b.id);
        assert!(store.create("v".into(), Value::Null, Value::Null, None).is_none(), "store is bounded");
    }
}
