//! The `native` backend: a Linux process confined by namespaces (a user
//! namespace too when berth is not root), a private read-only root, an
//! unprivileged user, no capabilities, `no_new_privs`, a seccomp filter,
//! rlimits and a cgroup.
//!
//! berth launches its own executable as a small *init* (see [`run_init_if_requested`],
//! which the binary calls first thing in `main`). The init is single-threaded,
//! so it can do what a multi-threaded async process cannot safely do between
//! `fork` and `exec`: join the cgroup, unshare namespaces, fork the
//! namespace's PID 1, build and pivot into the new root, drop every privilege
//! and exec the server. Killing the init (or berth) kills PID 1, and with it
//! every process in the namespace.

mod cgroup;
mod forward;
mod init;
mod root;
pub(crate) mod seccomp;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use crate::egress::{Allowlist, EgressProxy};
use crate::{
    BoxFuture, ExitStatus, Instance, InstanceControl, Limits, Mount, Network, Sandbox, SandboxError, SandboxSpec,
    UsageProbe,
};

pub use init::run_init_if_requested;

/// The environment variable that carries an init's instructions.
const INIT_ENV: &str = "BERTH_SANDBOX_INIT";

/// Defaults applied where a spec's [`Limits`] leave a value open.
pub const DEFAULT_LIMITS: Limits = Limits {
    memory: Some(512 << 20),
    pids: Some(256),
    cpus: Some(1.0),
    nofile: Some(1024),
    file_size: Some(64 << 20),
    tmpfs: Some(64 << 20),
    // Namespaced processes are bounded by their CPU quota instead.
    cpu_deadline: None,
};

/// The uid and gid sandboxed programs run as (`nobody`).
pub const SANDBOX_ID: u32 = 65534;

/// What the init needs, passed from berth through [`INIT_ENV`].
#[derive(Debug, Serialize, Deserialize)]
struct InitSpec {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    mounts: Vec<Mount>,
    limits: Limits,
    /// An empty directory to build the new root in (inside the new mount
    /// namespace, so nothing is left on the host but the directory).
    root: PathBuf,
    /// `cgroup.procs` files the init adds itself to before anything else.
    cgroup_procs: Vec<PathBuf>,
    /// The egress proxy's socket (mounted into the sandbox), when the spec
    /// allows egress: the sandbox then gets a loopback interface and a
    /// forwarder from `127.0.0.1:`[`PROXY_PORT`](crate::egress::PROXY_PORT) to this socket.
    #[serde(default)]
    egress: Option<PathBuf>,
    /// Set when berth is not root: the init first enters a new user
    /// namespace with this mapping, and the rest happens inside it.
    #[serde(default)]
    user: Option<IdMap>,
}

/// Runs programs in namespaces with a private root.
#[derive(Debug, Clone)]
pub struct NativeSandbox {
    exe: PathBuf,
    scratch: PathBuf,
    /// berth's own ids when it is not root: instances then start in a user
    /// namespace of their own, with `nobody` inside mapped to these.
    user: Option<IdMap>,
    /// The cgroup instances' groups are made in (see [`cgroup::parent`]).
    cgroups: String,
}

/// The one id pair a user namespace maps: [`SANDBOX_ID`] inside is `uid` and
/// `gid` outside (an unprivileged process may map only its own ids).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct IdMap {
    uid: u32,
    gid: u32,
}

/// Fails, saying why, when this kernel lets no unprivileged process create
/// a user namespace.
fn user_namespaces_allowed() -> Result<(), SandboxError> {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let refused = |why: &str| {
        Err(SandboxError::Unsupported(format!(
            "the native sandbox needs root or unprivileged user namespaces, and {why}; use --sandbox none"
        )))
    };
    if !Path::new("/proc/self/ns/user").exists() {
        return refused("this kernel has none");
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return refused("user.max_user_namespaces is 0");
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return refused("kernel.unprivileged_userns_clone is 0");
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return refused("AppArmor restricts them (kernel.apparmor_restrict_unprivileged_userns is 1)");
    }
    Ok(())
}

impl NativeSandbox {
    /// A sandbox that launches `exe` (a binary that calls
    /// [`run_init_if_requested`] first) as the init. Fails with a message
    /// saying what is missing when this host cannot run it.
    pub fn new(exe: PathBuf) -> Result<Self, SandboxError> {
        if !Path::new("/proc/self/ns/pid").exists() {
            return Err(SandboxError::Unsupported("this kernel has no PID namespaces".into()));
        }
        let euid = nix::unistd::geteuid();
        let user = if euid.is_root() {
            None
        } else {
            user_namespaces_allowed()?;
            Some(IdMap { uid: euid.as_raw(), gid: nix::unistd::getegid().as_raw() })
        };
        let cgroups = cgroup::parent(user.map(|ids| ids.uid));
        cgroup::check(&cgroups)?;
        // Per user: a root berth's directory is not a non-root one's to use.
        let scratch = match user {
            None => std::env::temp_dir().join("berth-sandbox"),
            Some(ids) => std::env::temp_dir().join(format!("berth-sandbox-{}", ids.uid)),
        };
        std::fs::create_dir_all(&scratch).map_err(SandboxError::Control)?;
        EgressProxy::sweep(&scratch);
        Ok(Self { exe, scratch, user, cgroups })
    }

    /// A sandbox whose init is the running executable.
    pub fn current_exe() -> Result<Self, SandboxError> {
        Self::new(std::env::current_exe().map_err(SandboxError::Control)?)
    }
}

impl Sandbox for NativeSandbox {
    fn name(&self) -> &'static str {
        "native"
    }

    fn launch<'a>(&'a self, spec: &'a SandboxSpec) -> BoxFuture<'a, Result<Instance, SandboxError>> {
        Box::pin(async move { self.spawn(spec) })
    }
}

impl NativeSandbox {
    fn spawn(&self, spec: &SandboxSpec) -> Result<Instance, SandboxError> {
        if spec.program.is_empty() {
            return Err(SandboxError::InvalidSpec("empty program".into()));
        }
        let limits = merge(&spec.limits);
        let id = format!("{:016x}", rand::random::<u64>());
        let mut mounts = spec.mounts.clone();
        let mut env = spec.environment();
        // First, so that a bad allowlist leaves nothing behind; dropped
        // (socket and all) if a later step fails.
        let egress = match &spec.network {
            Network::None => None,
            Network::Egress { allow } => {
                let allow = Allowlist::parse(allow)?;
                let dir = self.scratch.join(format!("{}{id}", crate::egress::DIR_PREFIX));
                let proxy = EgressProxy::start(dir, allow, format!("{id} ({})", spec.program))?;
                mounts.push(Mount::read_only(proxy.dir()));
                crate::egress::set_proxy_env(&mut env);
                Some(proxy)
            }
        };
        let group = cgroup::Group::create(&self.cgroups, &id, &limits)?;
        let root = self.scratch.join(&id);
        std::fs::create_dir_all(&root).map_err(SandboxError::Control)?;
        if let Some(dir) = program_dir(&spec.program) {
            mounts.push(Mount::read_only(dir));
        }
        let init = InitSpec {
            program: spec.program.clone(),
            args: spec.args.clone(),
            env,
            cwd: spec.cwd.clone(),
            mounts,
            limits,
            root: root.clone(),
            cgroup_procs: group.procs_files(),
            egress: egress.as_ref().map(|p| p.socket().to_path_buf()),
            user: self.user,
        };
        let json = serde_json::to_string(&init).map_err(|e| SandboxError::InvalidSpec(e.to_string()))?;
        let mut cmd = Command::new(&self.exe);
        cmd.env_clear().env(INIT_ENV, json);
        crate::process::spawn_piped(&mut cmd, &spec.program, |child| {
            Box::new(NativeControl { child, group: Some(group), root, egress })
        })
    }
}

/// The spec's limits, with [`DEFAULT_LIMITS`] where it says nothing.
fn merge(l: &Limits) -> Limits {
    let d = DEFAULT_LIMITS;
    Limits {
        memory: l.memory.or(d.memory),
        pids: l.pids.or(d.pids),
        cpus: l.cpus.or(d.cpus),
        nofile: l.nofile.or(d.nofile),
        file_size: l.file_size.or(d.file_size),
        tmpfs: l.tmpfs.or(d.tmpfs),
        cpu_deadline: l.cpu_deadline.or(d.cpu_deadline),
    }
}

/// The directory of an absolute program path, so the program itself is visible.
fn program_dir(program: &str) -> Option<PathBuf> {
    let path = Path::new(program);
    if !path.is_absolute() {
        return None;
    }
    let real = std::fs::canonicalize(path).ok()?;
    let dir = real.parent()?;
    // The system directories are mounted anyway.
    (!["/usr", "/bin", "/sbin", "/lib"].iter().any(|p| dir.starts_with(p))).then(|| dir.to_path_buf())
}

struct NativeControl {
    child: Child,
    group: Option<cgroup::Group>,
    root: PathBuf,
    /// The instance's egress proxy; dropped (listener, tunnels and socket
    /// gone) when the instance ends.
    egress: Option<EgressProxy>,
}

impl NativeControl {
    fn cleanup(&mut self) {
        crate::process::kill_group(self.child.id());
        self.group.take();
        self.egress.take();
        let _ = std::fs::remove_dir(&self.root);
    }
}

impl InstanceControl for NativeControl {
    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// What the instance's cgroup is charged: every process in it.
    fn usage(&self) -> UsageProbe {
        let dirs: Vec<PathBuf> = self
            .group
            .as_ref()
            .map(|g| g.procs_files().iter().filter_map(|p| p.parent().map(Path::to_path_buf)).collect())
            .unwrap_or_default();
        Arc::new(move || {
            let dirs = dirs.clone();
            Box::pin(async move { crate::usage::of_cgroups(&dirs) })
        })
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<ExitStatus, SandboxError>> {
        Box::pin(async move {
            let status = self.child.wait().await.map_err(SandboxError::Control)?;
            self.cleanup();
            Ok(status.into())
        })
    }

    fn kill(&mut self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            if let Some(group) = &self.group {
                group.kill_all();
            }
            self.child.kill().await.map_err(SandboxError::Control)
        })
    }
}

impl Drop for NativeControl {
    fn drop(&mut self) {
        if let Some(group) = &self.group {
            group.kill_all();
        }
        self.cleanup();
    }
}
