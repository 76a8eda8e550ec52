//! berth's runtime: the bridge between MCP Streamable HTTP clients of either
//! protocol era and STDIO MCP servers running in sandboxes.
//!
//! The request path reads top to bottom: [`front`] (HTTP, era detection,
//! header checks) → [`upstream`] (one multiplexed server process, its
//! handshake and supervision). `berth serve` adds [`hosting`] (every
//! catalog connector at its own URL, started on demand) and [`serve`] (its
//! HTTP surface: MCP endpoints, admin API, registry API). [`era`] holds what differs between the
//! protocol revisions, and [`jsonrpc`] the little of JSON-RPC berth parses.

pub mod audit;
pub mod autoscale;
pub mod bundle;
pub mod db;
pub mod era;
pub mod front;
pub mod groups;
pub mod hosting;
pub mod jsonrpc;
pub mod pins;
pub mod policies;
pub mod policy;
pub mod pool;
pub mod sandboxes;
pub mod serve;
pub mod settings;
pub mod tick;
pub mod trace;
pub mod upstream;
