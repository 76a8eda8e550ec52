//! `berth run`: one STDIO server hosted at `http://ADDR/mcp`, no catalog.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use berth_runtime::front::{Front, FrontConfig};
use berth_runtime::pool::{Pool, Pools};
use berth_runtime::sandboxes::{Backend, Sandboxes};
use berth_runtime::upstream::{Era, HostConfig};
use berth_sandbox::egress::Allowlist;
use berth_sandbox::{Limits, Mount, Network, SandboxSpec};
use clap::ValueEnum;

use super::{parse, shutdown};

/// The default listen address of `berth run`.
const DEFAULT_LISTEN: &str = "127.0.0.1:8378";

#[derive(clap::Args)]
pub struct RunArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = DEFAULT_LISTEN, env = "BERTH_LISTEN")]
    listen: SocketAddr,
    /// Environment variable for the server, KEY=VALUE (repeatable). The
    /// server sees only these plus PATH and HOME.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse::env)]
    env: Vec<(String, String)>,
    /// Sandbox backend (default: native; `none` runs the server as a plain
    /// process with the host's network and files).
    #[arg(long, value_enum)]
    sandbox: Option<Backend>,
    /// Image to run the server in (`--sandbox container`).
    #[arg(long)]
    image: Option<String>,
    /// Host path visible inside the sandbox at the same path, read-only;
    /// append `:rw` to make it writable (repeatable).
    #[arg(long = "mount", value_name = "PATH[:rw]", value_parser = parse::mount)]
    mounts: Vec<Mount>,
    /// Memory limit of the server, e.g. `256M` or `1G` (native, container
    /// and wasi sandboxes).
    #[arg(long, value_parser = parse::size)]
    memory: Option<u64>,
    /// Most processes and threads the server may have (native sandbox).
    #[arg(long)]
    pids: Option<u64>,
    /// CPU limit in cores, e.g. `0.5` (native sandbox).
    #[arg(long)]
    cpus: Option<f64>,
    /// Longest the server may compute after its last input before it is
    /// stopped, e.g. `500ms` or `30s` (wasi sandbox; default 30s).
    #[arg(long, value_parser = parse::duration)]
    cpu_deadline: Option<Duration>,
    /// Host the server may reach through berth's egress proxy: `HOST`
    /// (port 443), `HOST:PORT`, `*.DOMAIN[:PORT]` or an IP literal
    /// (repeatable; native and container sandboxes). Without it the server
    /// has no network.
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    allow_hosts: Vec<String>,
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
    #[command(flatten)]
    scaling: super::scaling::ScalingArgs,
    /// The server command and its arguments (`--sandbox wasi`: the `.wasm`
    /// file and its arguments).
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum EraArg {
    Auto,
    Legacy,
    Modern,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let Some((program, rest)) = args.command.split_first() else { bail!("no server command given") };
    let backend = args.sandbox.unwrap_or(Backend::Native);
    // First: there is no point installing anything for a sandbox that
    // cannot run here.
    let sandbox = Sandboxes::default().get(backend).await.map_err(|e| match args.sandbox {
        Some(_) => anyhow::Error::msg(e),
        None => {
            anyhow::anyhow!("{e}\n(native is berth run's default sandbox; --sandbox none runs the server unconfined)")
        }
    })?;
    let runner = (backend == Backend::Native).then(|| super::runner::parse(program, rest)).flatten();
    let mut spec = if backend == Backend::Wasi {
        // A guest has no use for the host's PATH or HOME: only `--env`.
        SandboxSpec::wasm(program, rest.iter().cloned())
    } else {
        let mut spec = SandboxSpec::command(program.clone(), rest.iter().cloned());
        spec.inherit_env = vec!["PATH".into(), "HOME".into(), "LANG".into(), "TERM".into()];
        spec
    };
    spec.env = args.env;
    spec.mounts = args.mounts;
    spec.image = args.image;
    if let Some(runner) = runner {
        let launch = super::runner::install(&runner).await?;
        spec.program = launch.program;
        spec.args = launch.args.into_iter().chain(runner.args).collect();
        // The runtime's variables first, so `--env` can still override them.
        spec.env = launch.env.into_iter().chain(spec.env).collect();
        spec.mounts.extend(launch.mounts.into_iter().map(Mount::read_only));
    }
    if !args.allow_hosts.is_empty() {
        match backend {
            Backend::Native | Backend::Container => {}
            Backend::None => bail!("--allow-host needs a sandbox that enforces it (--sandbox native or container)"),
            Backend::Wasi => bail!("--allow-host: WASI guests get no sockets (use --sandbox native or container)"),
        }
        Allowlist::parse(&args.allow_hosts)?;
        spec.network = Network::Egress { allow: args.allow_hosts };
    }
    spec.limits = Limits {
        memory: args.memory,
        pids: args.pids,
        cpus: args.cpus,
        cpu_deadline: args.cpu_deadline,
        ..Limits::default()
    };
    let mut host = HostConfig::new(program.clone(), spec);
    host.era = match args.era {
        EraArg::Auto => None,
        EraArg::Legacy => Some(Era::Legacy),
        EraArg::Modern => Some(Era::Modern),
    };
    host.limits.max_line = args.max_line;
    if backend == Backend::Container && host.spec.image.is_none() {
        bail!("--sandbox container needs --image");
    }
    let scaling = args.scaling.scaling()?;
    let pool = Pool::new(host, sandbox, scaling);
    let pools = Arc::new(Pools::single(pool.clone()));

    let mut config = FrontConfig::default();
    config.allow.hosts.extend(args.allowed_hosts);
    if !args.listen.ip().is_unspecified() && !args.listen.ip().is_loopback() {
        config.allow.hosts.push(args.listen.ip().to_string());
    }
    config.allow.origins = args.allowed_origins;
    config.request_timeout = Duration::from_secs(args.request_timeout);
    config.max_body = args.max_body;
    let front = Front::new(pools.clone(), config);
    let app = front.router("/mcp");

    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("berth: serving `{}` at http://{addr}/mcp", args.command.join(" "));
    // Start the server now, so the first client does not wait for it.
    let warm = pool.clone();
    tokio::spawn(async move {
        if let Err(err) = warm.ready().await {
            tracing::warn!(error = %err.message, "server did not start; will retry on first request");
        }
    });
    // The autoscaler decides once a second, as under `berth serve`.
    berth_runtime::tick::every_second(&pool, |pool| pool.tend(true));
    let closer = front.clone();
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown::signal().await;
        closer.close();
    });
    // In-flight requests get a grace period to finish; then berth exits anyway.
    let mut serve = std::pin::pin!(serve.into_future());
    tokio::select! {
        res = &mut serve => res.context("serving HTTP")?,
        _ = async { front.closed().await; tokio::time::sleep(shutdown::GRACE).await } => {
            tracing::warn!(grace = ?shutdown::GRACE, "requests still running after the grace period; exiting");
        }
    }
    pool.shutdown();
    Ok(())
}
