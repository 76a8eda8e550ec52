//! The subcommands; each file parses its flags and wires library parts.

pub mod admin_client;
pub mod examples;
pub mod import;
pub mod migrate;
pub mod parse;
pub mod publish;
pub mod run;
pub mod scaling;
pub mod serve;
pub mod shutdown;
