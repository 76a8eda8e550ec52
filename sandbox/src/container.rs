//! The `container` backend: one Docker container per instance, through the
//! Engine API (bollard): stdin attached, read-only root filesystem, a private
//! `/tmp`, every capability dropped, `no-new-privileges`, memory, pids and CPU
//! limits, no network (an egress allowlist adds one listener on the
//! container's loopback that leads to berth's proxy, see [`netns`]), a
//! non-root user, and removal when it stops.
//!
//! Images are the operator's: berth neither pulls nor builds them here. A
//! container outlives a killed berth only until its stdin closes (most
//! servers exit then); [`ContainerSandbox::sweep`] removes any leftovers.

mod netns;

use std::collections::HashMap;
use std::sync::Arc;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, KillContainerOptions, ListContainersOptions,
    RemoveContainerOptions, StartContainerOptions, StatsOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::egress::{Allowlist, Serving};
use crate::native::{DEFAULT_LIMITS, SANDBOX_ID};
use crate::{
    BoxFuture, ExitStatus, Instance, InstanceControl, Network, Sandbox, SandboxError, SandboxSpec, Usage, UsageProbe,
};

/// The label every berth container carries, with its owner's process id.
const OWNER_LABEL: &str = "io.berth.owner-pid";

/// Runs programs in Docker containers.
#[derive(Clone)]
pub struct ContainerSandbox {
    docker: Docker,
}

impl std::fmt::Debug for ContainerSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerSandbox").finish_non_exhaustive()
    }
}

fn engine(e: bollard::errors::Error) -> SandboxError {
    SandboxError::Unsupported(format!("Docker engine: {e}"))
}

impl ContainerSandbox {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket)
    /// and agrees on an API version with it.
    pub async fn connect() -> Result<Self, SandboxError> {
        let docker =
            Docker::connect_with_local_defaults().map_err(engine)?.negotiate_version().await.map_err(engine)?;
        docker.ping().await.map_err(engine)?;
        Ok(Self { docker })
    }

    /// Removes berth containers whose owning berth process is gone.
    pub async fn sweep(&self) {
        let mut filters = HashMap::new();
        filters.insert("label".to_owned(), vec![OWNER_LABEL.to_owned()]);
        let opts = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let Ok(list) = self.docker.list_containers(Some(opts)).await else { return };
        for c in list {
            let owner = c.labels.as_ref().and_then(|l| l.get(OWNER_LABEL)).and_then(|p| p.parse::<i32>().ok());
            let alive = owner.is_some_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok());
            if let (false, Some(id)) = (alive, c.id) {
                let opts = RemoveContainerOptions { force: true, ..Default::default() };
                let _ = self.docker.remove_container(&id, Some(opts)).await;
            }
        }
    }

    /// Makes sure `image` is in the engine, pulling it when it is not (which
    /// works only where its registry is reachable).
    async fn ensure_image(&self, image: &str) -> Result<(), SandboxError> {
        if self.docker.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        tracing::info!(image, "image not in the engine; pulling it");
        let opts =
            bollard::query_parameters::CreateImageOptions { from_image: Some(image.to_owned()), ..Default::default() };
        let mut pull = self.docker.create_image(Some(opts), None, None);
        while let Some(step) = pull.next().await {
            if let Err(e) = step {
                return Err(SandboxError::InvalidSpec(format!(
                    "image {image} is not in the Docker engine and could not be pulled: {e}"
                )));
            }
        }
        Ok(())
    }

    async fn start(&self, spec: &SandboxSpec) -> Result<Instance, SandboxError> {
        // First, so that a bad allowlist starts nothing.
        let allow = match &spec.network {
            Network::None => None,
            Network::Egress { allow } => {
                if !nix::unistd::geteuid().is_root() {
                    return Err(SandboxError::Unsupported(
                        "an egress allowlist in a container needs berth to run as root (berth opens the \
                         proxy's listener inside the container's network namespace)"
                            .into(),
                    ));
                }
                Some(Allowlist::parse(allow)?)
            }
        };
        let mut env = spec.environment();
        if allow.is_some() {
            crate::egress::set_proxy_env(&mut env);
        }
        let image = spec
            .image
            .clone()
            .ok_or_else(|| SandboxError::InvalidSpec("the container backend needs an image".into()))?;
        self.ensure_image(&image).await?;
        let limits = &spec.limits;
        let d = DEFAULT_LIMITS;
        let memory = limits.memory.or(d.memory).map(|m| i64::try_from(m).unwrap_or(i64::MAX));
        let tmpfs = limits.tmpfs.or(d.tmpfs).unwrap_or(64 << 20);
        let host = HostConfig {
            network_mode: Some("none".into()),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into(), format!("seccomp={}", seccomp_profile())]),
            ulimits: Some(vec![
                ulimit("nofile", limits.nofile.or(d.nofile)),
                ulimit("fsize", limits.file_size.or(d.file_size)),
                ulimit("core", Some(0)),
            ]),
            memory,
            memory_swap: memory,
            pids_limit: limits.pids.or(d.pids).map(|p| i64::try_from(p).unwrap_or(i64::MAX)),
            nano_cpus: limits.cpus.or(d.cpus).map(|c| (c * 1e9) as i64),
            tmpfs: Some(HashMap::from([("/tmp".to_owned(), format!("rw,noexec,nosuid,size={tmpfs}"))])),
            binds: Some(
                spec.mounts
                    .iter()
                    .map(|m| {
                        let mode = if m.writable { "rw" } else { "ro" };
                        format!("{}:{}:{mode}", m.path.display(), m.inside().display())
                    })
                    .collect(),
            ),
            auto_remove: Some(true),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            // No program: the image's own entrypoint, as `docker run IMAGE ARGS…` would.
            entrypoint: (!spec.program.is_empty()).then(|| vec![spec.program.clone()]),
            cmd: (!spec.program.is_empty() || !spec.args.is_empty()).then(|| spec.args.clone()),
            env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
            user: Some(format!("{SANDBOX_ID}:{SANDBOX_ID}")),
            working_dir: spec.cwd.as_ref().map(|p| p.display().to_string()),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(true),
            tty: Some(false),
            labels: Some(HashMap::from([(OWNER_LABEL.to_owned(), std::process::id().to_string())])),
            host_config: Some(host),
            ..Default::default()
        };
        let name = format!("berth-{:016x}", rand::random::<u64>());
        let opts = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        let created = self.docker.create_container(Some(opts), body).await.map_err(|e| SandboxError::Spawn {
            program: spec.program.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let id = created.id;
        // Attach before start, so no early output is lost.
        let attach =
            AttachContainerOptions { stdin: true, stdout: true, stderr: true, stream: true, ..Default::default() };
        let attached = self.docker.attach_container(&id, Some(attach)).await.map_err(engine)?;
        let mut control = ContainerControl { docker: self.docker.clone(), id, done: false, _egress: None };
        self.docker.start_container(&control.id, None::<StartContainerOptions>).await.map_err(engine)?;
        if let Some(allow) = allow {
            // On failure `control` is dropped, which removes the container.
            let label = format!("{} ({image})", &control.id[..12.min(control.id.len())]);
            control._egress = Some(self.egress(&control.id, allow, label, &spec.program).await?);
        }

        let (stdout_r, stdout_w) = tokio::io::simplex(64 << 10);
        let (stderr_r, stderr_w) = tokio::io::simplex(16 << 10);
        tokio::spawn(demux(attached.output, stdout_w, stderr_w));
        Ok(Instance {
            stdin: Box::new(attached.input),
            stdout: Box::new(stdout_r),
            stderr: Box::new(stderr_r),
            control: Box::new(control),
        })
    }

    /// Serves `allow` on `127.0.0.1:`[`PROXY_PORT`](crate::egress::PROXY_PORT)
    /// inside the running container `id`.
    ///
    /// The container's server is already running: one that connects out
    /// before berth has opened the listener (within milliseconds of start,
    /// and before berth sends it anything) is refused that first time.
    async fn egress(&self, id: &str, allow: Allowlist, label: String, program: &str) -> Result<Serving, SandboxError> {
        let state = self.docker.inspect_container(id, None).await.map_err(engine)?.state;
        let pid = state.and_then(|s| s.pid).filter(|&p| p > 0).ok_or_else(|| SandboxError::Spawn {
            program: program.to_owned(),
            source: std::io::Error::other("the container exited as it started"),
        })?;
        let listener = netns::listen_in(pid).map_err(|e| {
            SandboxError::Control(std::io::Error::new(
                e.kind(),
                format!("opening the egress listener in the container's network namespace: {e}"),
            ))
        })?;
        crate::egress::serve_tcp(listener, allow, label).map_err(SandboxError::Control)
    }
}

fn ulimit(name: &str, value: Option<u64>) -> ResourcesUlimits {
    let v = value.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    ResourcesUlimits { name: Some(name.into()), soft: v, hard: v }
}

/// The same system calls the native backend refuses, as a Docker seccomp
/// profile, so both backends draw the line in the same place.
fn seccomp_profile() -> String {
    use crate::native::seccomp::{DENIED, NAMESPACE_FLAGS};
    let names: Vec<&str> = DENIED.iter().map(|(n, _)| *n).collect();
    let mut rules = vec![
        serde_json::json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM}),
        serde_json::json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}),
    ];
    rules.extend(NAMESPACE_FLAGS.iter().map(|&flag| {
        serde_json::json!({
            "names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM,
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
        })
    }));
    serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}).to_string()
}

/// Splits the engine's multiplexed output into stdout and stderr.
async fn demux(
    mut output: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
    mut stdout: tokio::io::WriteHalf<tokio::io::SimplexStream>,
    mut stderr: tokio::io::WriteHalf<tokio::io::SimplexStream>,
) {
    while let Some(Ok(chunk)) = output.next().await {
        let ok = match chunk {
            LogOutput::StdOut { message } | LogOutput::Console { message } => stdout.write_all(&message).await.is_ok(),
            LogOutput::StdErr { message } => stderr.write_all(&message).await.is_ok(),
            LogOutput::StdIn { .. } => true,
        };
        if !ok {
            break;
        }
    }
    let _ = stdout.shutdown().await;
    let _ = stderr.shutdown().await;
}

impl Sandbox for ContainerSandbox {
    fn name(&self) -> &'static str {
        "container"
    }

    fn launch<'a>(&'a self, spec: &'a SandboxSpec) -> BoxFuture<'a, Result<Instance, SandboxError>> {
        Box::pin(self.start(spec))
    }
}

struct ContainerControl {
    docker: Docker,
    id: String,
    done: bool,
    /// The container's egress proxy; dropped (listener and tunnels gone)
    /// with the instance.
    _egress: Option<Serving>,
}

impl InstanceControl for ContainerControl {
    fn pid(&self) -> Option<u32> {
        None
    }

    /// The engine's one-shot stats: the container cgroup's CPU time and
    /// memory charge.
    fn usage(&self) -> UsageProbe {
        let (docker, id) = (self.docker.clone(), self.id.clone());
        Arc::new(move || {
            let (docker, id) = (docker.clone(), id.clone());
            Box::pin(async move {
                let opts = StatsOptions { stream: false, one_shot: true };
                let Some(Ok(stats)) = docker.stats(&id, Some(opts)).next().await else { return Usage::default() };
                Usage {
                    cpu: stats
                        .cpu_stats
                        .and_then(|c| c.cpu_usage?.total_usage)
                        .filter(|&ns| ns > 0)
                        .map(std::time::Duration::from_nanos),
                    memory: stats.memory_stats.and_then(|m| m.usage),
                }
            })
        })
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<ExitStatus, SandboxError>> {
        Box::pin(async move {
            let mut waits = self.docker.wait_container(&self.id, None::<WaitContainerOptions>);
            let code = match waits.next().await {
                Some(Ok(r)) => r.status_code,
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
                Some(Err(e)) => return Err(SandboxError::Control(std::io::Error::other(e.to_string()))),
                None => -1,
            };
            self.done = true;
            Ok(ExitStatus::Code(i32::try_from(code).unwrap_or(-1)))
        })
    }

    fn kill(&mut self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            let opts = KillContainerOptions { signal: "KILL".into() };
            self.docker
                .kill_container(&self.id, Some(opts))
                .await
                .map_err(|e| SandboxError::Control(std::io::Error::other(e.to_string())))
        })
    }
}

impl Drop for ContainerControl {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Removal is asynchronous; hand it to the runtime if there is one.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (docker, id) = (self.docker.clone(), self.id.clone());
            rt.spawn(async move {
                let opts = RemoveContainerOptions { force: true, ..Default::default() };
                let _ = docker.remove_container(&id, Some(opts)).await;
            });
        }
    }
}
