//! The `berth` command line. Parsing and wiring only; the work is in the
//! library modules.

mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "berth", version, about = "Host MCP servers in sandboxes behind Streamable HTTP")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the catalog: every published connector at /mcp/{name}, plus the
    /// admin and registry APIs.
    Serve(cli::serve::ServeArgs),
    /// Validate a connector manifest and publish it to a running berth.
    Publish(cli::publish::PublishArgs),
    /// Seed the catalog from a registry export, through a running berth.
    Import(cli::import::ImportArgs),
    /// Move local STDIO servers from a Claude Desktop, Cursor or VS Code
    /// config to hosted connectors, and point the config at them.
    Migrate(cli::migrate::MigrateArgs),
    /// Host one STDIO MCP server at http://ADDR/mcp, no catalog.
    Run(cli::run::RunArgs),
    /// The catalog of a running berth: list, versions, deprecate, yank.
    Connectors(cli::connectors::ConnectorsArgs),
    /// A running berth's instances: list, drain, kill.
    Instances(cli::instances::InstancesArgs),
    /// A running berth's audit trail.
    Audit(cli::audit::AuditArgs),
    /// A running berth's personal access tokens.
    Tokens(cli::tokens::TokensArgs),
    /// A running berth's upstream OAuth providers.
    Providers(cli::providers::ProvidersArgs),
    /// A connector's secrets (write-only values).
    Secrets(cli::secrets::SecretsArgs),
    /// Per-user tool policies of a connector.
    Policies(cli::policies::PoliciesArgs),
    /// A connector's pinned tool definitions.
    Tools(cli::tools::ToolsArgs),
    /// Group memberships, for group tool policies.
    Groups(cli::groups::GroupsArgs),
    /// Bundles: one URL exposing chosen tools of several connectors.
    Bundles(cli::bundles::BundlesArgs),
    /// What a running berth runs with; some settings change at run time.
    Settings(cli::settings::SettingsArgs),
    /// Everyone a running berth knows of; offboarding.
    Users(cli::users::UsersArgs),
}

fn main() -> anyhow::Result<()> {
    // A sandbox init is this same executable; it must start before any thread.
    berth_sandbox::native::run_init_if_requested();
    // Every https client of the process (package downloads, identity and
    // OAuth providers, client metadata documents) uses the same TLS provider.
    berth_oauth::install_tls();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("BERTH_WORKERS").ok().and_then(|v| v.parse().ok()) {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build().context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => rt.block_on(cli::serve::serve(args)),
        Command::Publish(args) => rt.block_on(cli::publish::publish(args)),
        Command::Import(args) => rt.block_on(cli::import::import(args)),
        Command::Migrate(args) => rt.block_on(cli::migrate::migrate(args)),
        Command::Run(args) => rt.block_on(cli::run::run(args)),
        Command::Connectors(args) => rt.block_on(cli::connectors::connectors(args)),
        Command::Instances(args) => rt.block_on(cli::instances::instances(args)),
        Command::Audit(args) => rt.block_on(cli::audit::audit(args)),
        Command::Tokens(args) => rt.block_on(cli::tokens::tokens(args)),
        Command::Providers(args) => rt.block_on(cli::providers::providers(args)),
        Command::Secrets(args) => rt.block_on(cli::secrets::secrets(args)),
        Command::Policies(args) => rt.block_on(cli::policies::policies(args)),
        Command::Tools(args) => rt.block_on(cli::tools::tools(args)),
        Command::Groups(args) => rt.block_on(cli::groups::groups(args)),
        Command::Bundles(args) => rt.block_on(cli::bundles::bundles(args)),
        Command::Settings(args) => rt.block_on(cli::settings::settings(args)),
        Command::Users(args) => rt.block_on(cli::users::users(args)),
    }
}
