//! The subcommands; each file parses its flags and wires library parts.

pub mod admin_client;
pub mod audit;
pub mod bundles;
pub mod connectors;
pub mod examples;
pub mod groups;
pub mod import;
pub mod instances;
pub mod migrate;
pub mod output;
pub mod parse;
pub mod policies;
pub mod providers;
pub mod publish;
pub mod run;
pub mod runner;
pub mod scaling;
pub mod secrets;
pub mod serve;
pub mod settings;
pub mod shutdown;
pub mod tokens;
pub mod tools;
pub mod users;
