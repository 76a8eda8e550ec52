//! The `berth` command line. Parsing and wiring only; the work is in the
//! library modules.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use berth_runtime::front::{Front, FrontConfig};
use berth_runtime::upstream::{Era, Host, HostConfig};
use berth_sandbox::container::ContainerSandbox;
use berth_sandbox::native::NativeSandbox;
use berth_sandbox::process::ProcessSandbox;
use berth_sandbox::{Limits, Mount, Sandbox, SandboxSpec};
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

/// How long in-flight requests may run after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The default listen address of `berth run`.
const DEFAULT_LISTEN: &str = "127.0.0.1:8378";

#[derive(Parser)]
#[command(name = "berth", version, about = "Host MCP servers in sandboxes behind Streamable HTTP")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Host one STDIO MCP server at http://ADDR/mcp.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = DEFAULT_LISTEN, env = "BERTH_LISTEN")]
    listen: SocketAddr,
    /// Environment variable for the server, KEY=VALUE (repeatable). The
    /// server sees only these plus PATH and HOME.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Sandbox backend.
    #[arg(long, value_enum, default_value_t = SandboxKind::None)]
    sandbox: SandboxKind,
    /// Image to run the server in (`--sandbox container`).
    #[arg(long)]
    image: Option<String>,
    /// Host path visible inside the sandbox at the same path, read-only;
    /// append `:rw` to make it writable (repeatable).
    #[arg(long = "mount", value_name = "PATH[:rw]", value_parser = parse_mount)]
    mounts: Vec<Mount>,
    /// Memory limit of the server, e.g. `256M` or `1G` (native sandbox).
    #[arg(long, value_parser = parse_size)]
    memory: Option<u64>,
    /// Most processes and threads the server may have (native sandbox).
    #[arg(long)]
    pids: Option<u64>,
    /// CPU limit in cores, e.g. `0.5` (native sandbox).
    #[arg(long)]
    cpus: Option<f64>,
    /// The server's protocol era, if known; probed otherwise.
    #[arg(long, value_enum, default_value_t = EraArg::Auto)]
    era: EraArg,
    /// Extra host name accepted in the Host header (repeatable; `*` for any).
    #[arg(long = "allowed-host")]
    allowed_hosts: Vec<String>,
    /// Origin accepted from browsers (repeatable; `*` for any).
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    /// Longest a request may run, in seconds.
    #[arg(long, default_value_t = 600)]
    request_timeout: u64,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_body: usize,
    /// Longest line accepted from the server, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_line: usize,
    /// The server command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum SandboxKind {
    /// No isolation: a plain child process.
    None,
    /// Linux namespaces, a private read-only root, no privileges, seccomp, cgroup limits.
    Native,
    /// A Docker container (needs a running engine and `--image`).
    Container,
}

fn parse_mount(s: &str) -> Result<Mount, String> {
    let (path, writable) = match s.strip_suffix(":rw") {
        Some(p) => (p, true),
        None => (s.strip_suffix(":ro").unwrap_or(s), false),
    };
    let path = std::path::Path::new(path);
    if !path.is_absolute() {
        return Err(format!("mount path must be absolute: '{s}'"));
    }
    Ok(Mount { path: path.to_path_buf(), writable })
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.trim().to_ascii_uppercase() {
        t if t.ends_with('G') => (t[..t.len() - 1].to_owned(), 1u64 << 30),
        t if t.ends_with('M') => (t[..t.len() - 1].to_owned(), 1 << 20),
        t if t.ends_with('K') => (t[..t.len() - 1].to_owned(), 1 << 10),
        t => (t, 1),
    };
    num.parse::<u64>().map(|n| n * mul).map_err(|_| format!("expected a size like 256M, got '{s}'"))
}

#[derive(Clone, Copy, ValueEnum)]
enum EraArg {
    Auto,
    Legacy,
    Modern,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

fn main() -> anyhow::Result<()> {
    // A sandbox init is this same executable; it must start before any thread.
    berth_sandbox::native::run_init_if_requested();
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
        Command::Run(args) => rt.block_on(run(args)),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let Some((program, rest)) = args.command.split_first() else { bail!("no server command given") };
    let mut spec = SandboxSpec::command(program.clone(), rest.iter().cloned());
    spec.inherit_env = vec!["PATH".into(), "HOME".into(), "LANG".into(), "TERM".into()];
    spec.env = args.env;
    spec.mounts = args.mounts;
    spec.image = args.image;
    spec.limits = Limits { memory: args.memory, pids: args.pids, cpus: args.cpus, ..Limits::default() };
    let mut host = HostConfig::new(program.clone(), spec);
    host.era = match args.era {
        EraArg::Auto => None,
        EraArg::Legacy => Some(Era::Legacy),
        EraArg::Modern => Some(Era::Modern),
    };
    host.limits.max_line = args.max_line;
    let sandbox: Arc<dyn Sandbox> = match args.sandbox {
        SandboxKind::None => Arc::new(ProcessSandbox),
        SandboxKind::Native => Arc::new(NativeSandbox::current_exe().context("--sandbox native")?),
        SandboxKind::Container => {
            if host.spec.image.is_none() {
                bail!("--sandbox container needs --image");
            }
            let containers = ContainerSandbox::connect().await.context("--sandbox container")?;
            containers.sweep().await;
            Arc::new(containers)
        }
    };
    let host = Arc::new(Host::new(host, sandbox));

    let mut config = FrontConfig::default();
    config.allow.hosts.extend(args.allowed_hosts);
    if !args.listen.ip().is_unspecified() && !args.listen.ip().is_loopback() {
        config.allow.hosts.push(args.listen.ip().to_string());
    }
    config.allow.origins = args.allowed_origins;
    config.request_timeout = Duration::from_secs(args.request_timeout);
    config.max_body = args.max_body;
    let front = Front::new(host.clone(), config);
    let app = front.router("/mcp");

    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("berth: serving `{}` at http://{addr}/mcp", args.command.join(" "));
    // Start the server now, so the first client does not wait for it.
    let warm = host.clone();
    tokio::spawn(async move {
        if let Err(err) = warm.ready().await {
            tracing::warn!(error = %err.message, "server did not start; will retry on first request");
        }
    });
    let closer = front.clone();
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        closer.close();
    });
    // In-flight requests get a grace period to finish; then berth exits anyway.
    let mut serve = std::pin::pin!(serve.into_future());
    tokio::select! {
        res = &mut serve => res.context("serving HTTP")?,
        _ = async { front.closed().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still running after the grace period; exiting");
        }
    }
    host.shutdown();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return ctrl_c.await.unwrap_or(()),
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
