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
pub use proxy::{EgressProxy, Serving, serve_connection, serve_tcp};

/// The port of the in-sandbox listener that leads to the egress proxy; the
/// address the proxy variables name. The squid port, which proxy-aware tools
/// expect.
pub const PROXY_PORT: u16 = 3128;

/// The proxy variables set in an instance with egress, upper- and lower-case
/// because tools disagree on which they read.
const PROXY_VARS: [&str; 4] = ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"];

/// Points an instance's proxy variables at `127.0.0.1:`[`PROXY_PORT`],
/// replacing any the spec set.
pub(crate) fn set_proxy_env(env: &mut Vec<(String, String)>) {
    let url = format!("http://127.0.0.1:{PROXY_PORT}");
    env.retain(|(k, _)| !PROXY_VARS.contains(&k.as_str()));
    env.extend(PROXY_VARS.iter().map(|k| ((*k).to_owned(), url.clone())));
}
