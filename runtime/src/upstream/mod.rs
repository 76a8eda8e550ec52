//! The server side of the bridge: one process speaking newline-delimited
//! JSON-RPC on stdio, its handshake, and its supervision.

mod connection;
mod handshake;
mod host;
mod lines;
mod stderr;
mod stdin;

pub use connection::{Broadcast, Call, Connection, Limits, Upcall};
pub use handshake::{Era, ServerProfile, client_info};
pub use host::{Host, HostConfig, Ready};
