//! Bundles: virtual MCP servers at `/mcp/bundle/{name}` that expose chosen
//! tools of several connectors under one URL — one URL per role.
//!
//! A bundle names its members (connector, optional pinned version, the
//! tools it takes by name or pattern) and how their tools are exposed:
//! `{prefix}__{tool}` by default, or an alias. Its own policy applies on
//! top, to the exposed names; each member's manifest, user, group policies
//! and tool pins still apply underneath, since every call is relayed to the
//! member's endpoint as the caller.
//!
//! [`definition`] is the document admins write; [`server`] is the virtual
//! server that answers for it; [`store`] keeps definitions.

pub mod definition;
mod instance;
pub mod server;
pub mod store;

pub use definition::{Bundle, Member};
pub use instance::BundleSandbox;
pub use store::Bundles;
