//! berth's egress proxy: the only way out of a sandbox whose spec says
//! [`Network::Egress`](crate::Network::Egress).
//!
//! An HTTP `CONNECT` proxy, one listener per instance, so the allowlist it
//! enforces is always that instance's own. Each tunnel request is checked in
//! three steps ([`Allowlist::check`]): the `host:port` must match an entry;
//! a name is resolved here, by berth, and every address that is private,
//! loopback, link-local, CGNAT, unspecified, multicast or a cloud metadata
//! endpoint is dropped (unless the entry itself is that IP literal); and the
//! tunnel connects to an address that passed, never resolving the name
//! again, so a DNS answer that changes between check and use (rebinding)
//! gains nothing. Plain-HTTP proxying (`GET http://…`) is refused with 403:
//! a connector that wants cleartext HTTP to an allowlisted host can still
//! tunnel it with `CONNECT`, and one code path is one path to audit.
//!
//! Every refusal is logged (destination and reason) and answered `403`.

mod allow;
mod proxy;

pub use allow::{Allowlist, DEFAULT_PORT, Decision, EgressError, Refusal, Rule, address_class};
pub(crate) use proxy::DIR_PREFIX;
pub use proxy::{EgressProxy, serve, serve_connection};
