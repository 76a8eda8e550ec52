//! The init: berth's own executable, started with [`INIT_ENV`] set, turns
//! itself into the sandbox and execs the server. Runs single-threaded before
//! any async runtime exists, so forking and mounting are safe here.

use std::ffi::CString;
use std::path::Path;

use nix::sched::{CloneFlags, unshare};
use nix::sys::prctl;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, fork, setgroups, setresgid, setresuid};

use super::{INIT_ENV, IdMap, InitSpec, SANDBOX_ID, forward, root, seccomp};

/// If this process was started as a sandbox init, becomes the sandbox and
/// never returns; otherwise returns at once. Call it first thing in `main`,
/// before any threads start.
pub fn run_init_if_requested() {
    let Some(json) = std::env::var_os(INIT_ENV) else { return };
    let code = match serde_json::from_str::<InitSpec>(&json.to_string_lossy()) {
        Ok(spec) => match run(&spec) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("berth sandbox: {e}");
                126
            }
        },
        Err(e) => {
            eprintln!("berth sandbox: invalid init spec: {e}");
            126
        }
    };
    std::process::exit(code);
}

/// An error from setting the sandbox up, with what was being done.
pub(super) struct Failed(pub String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(super) trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, Failed>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, Failed> {
        self.map_err(|e| Failed(format!("{}: {e}", what())))
    }
}

fn run(spec: &InitSpec) -> Result<i32, Failed> {
    let me = std::process::id().to_string();
    for procs in &spec.cgroup_procs {
        std::fs::write(procs, &me).ctx(|| format!("joining {}", procs.display()))?;
    }
    // Without root, a user namespace of its own first: inside it the init
    // holds every capability the steps below need (over the namespaces it
    // creates, nothing of the host's), as `nobody`.
    if let Some(ids) = spec.user {
        enter_user_namespace(ids)?;
    }
    // Only the PID namespace is entered before the fork (it applies to
    // children); the others are entered by PID 1 alone, so that the init
    // keeps the host's view and can clean up after it.
    unshare(CloneFlags::CLONE_NEWPID).ctx(|| "unshare(pid)".into())?;
    // The init handles these itself (see `supervise`); blocked before the
    // fork so none is lost, unblocked again in the child before exec.
    let signals = watched();
    signals.thread_block().ctx(|| "blocking signals".into())?;
    // Dying with berth, the init first takes PID 1 and the cgroup with it.
    prctl::set_pdeathsig(Signal::SIGTERM).ctx(|| "pdeathsig".into())?;
    // SAFETY: the init is single-threaded (it runs before any runtime starts).
    #[allow(unsafe_code)]
    match unsafe { fork() }.ctx(|| "fork".into())? {
        ForkResult::Parent { child } => Ok(supervise(child, &signals, spec)),
        ForkResult::Child => {
            // PID 1 of the new namespace: dies with the init, takes everything with it.
            let _ = prctl::set_pdeathsig(Signal::SIGKILL);
            let _ = signals.thread_unblock();
            let err = become_sandbox(spec).err().unwrap_or_else(|| Failed("exec returned".into()));
            eprintln!("berth sandbox: {err}");
            std::process::exit(126);
        }
    }
}

/// Unshares a user namespace and maps [`SANDBOX_ID`] in it to berth's own
/// uid and gid, the only mapping an unprivileged process may write. Group
/// changes are denied in it (the kernel requires that before a gid map), so
/// nothing inside can drop a group to get past a "deny group" permission.
fn enter_user_namespace(ids: IdMap) -> Result<(), Failed> {
    unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "unshare(user)".into())?;
    let write = |file: &str, body: String| {
        std::fs::write(format!("/proc/self/{file}"), body).ctx(|| format!("writing /proc/self/{file}"))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{SANDBOX_ID} {} 1\n", ids.uid))?;
    write("gid_map", format!("{SANDBOX_ID} {} 1\n", ids.gid))
}

fn watched() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(sig);
    }
    set
}

/// Waits for PID 1, killing it if the init is told to stop (or berth dies),
/// then leaves and removes the instance's cgroup, and mirrors PID 1's fate
/// as the init's exit status.
fn supervise(child: Pid, signals: &SigSet, spec: &InitSpec) -> i32 {
    let code = loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break 125,
        }
        match signals.wait() {
            Ok(Signal::SIGCHLD) => {}
            Ok(_) => {
                let _ = kill(child, Signal::SIGKILL);
            }
            Err(_) => {}
        }
    };
    leave_cgroups(spec);
    // The (empty) directory PID 1's root was built in.
    let _ = std::fs::remove_dir(&spec.root);
    code
}

/// Moves the init out of the instance's cgroups and removes them, so a
/// killed berth leaves none behind.
fn leave_cgroups(spec: &InitSpec) {
    let me = std::process::id().to_string();
    for procs in &spec.cgroup_procs {
        let Some(group) = procs.parent() else { continue };
        // The nearest ancestor that takes it: on cgroup v1 the parent; on
        // v2 a parent with controllers enabled for its children may hold no
        // process, so the walk goes on up to the root, which may.
        let _ = group
            .ancestors()
            .skip(1)
            .take_while(|a| a.join("cgroup.procs").exists())
            .find(|a| std::fs::write(a.join("cgroup.procs"), &me).is_ok());
        // Empty once PID 1 and every process it started are gone.
        for _ in 0..100 {
            if std::fs::remove_dir(group).is_ok() || !group.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

fn become_sandbox(spec: &InitSpec) -> Result<(), Failed> {
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWCGROUP;
    unshare(flags).ctx(|| "unshare".into())?;
    if spec.egress.is_some() {
        forward::loopback_up()?;
    }
    root::build(spec)?;
    nix::unistd::sethostname("berth").ctx(|| "sethostname".into())?;
    limit(spec)?;
    let cwd = spec.cwd.as_deref().unwrap_or(Path::new("/tmp"));
    nix::unistd::chdir(cwd).ctx(|| format!("chdir {}", cwd.display()))?;
    let program = resolve(&spec.program, &spec.env)?;
    let argv: Vec<CString> = std::iter::once(spec.program.as_str())
        .chain(spec.args.iter().map(String::as_str))
        .map(cstring)
        .collect::<Result<_, _>>()?;
    let envp: Vec<CString> = spec.env.iter().map(|(k, v)| cstring(&format!("{k}={v}"))).collect::<Result<_, _>>()?;
    drop_privileges(spec.user.is_none())?;
    seccomp::apply()?;
    if let Some(socket) = &spec.egress {
        forward::start(socket)?;
    }
    nix::unistd::execve(&program, &argv, &envp).ctx(|| format!("exec {}", spec.program))?;
    Ok(())
}

fn limit(spec: &InitSpec) -> Result<(), Failed> {
    let l = &spec.limits;
    let set = |r: Resource, v: Option<u64>| match v {
        Some(v) => setrlimit(r, v, v).ctx(|| format!("setrlimit {r:?}")),
        None => Ok(()),
    };
    set(Resource::RLIMIT_NOFILE, l.nofile)?;
    set(Resource::RLIMIT_FSIZE, l.file_size)?;
    set(Resource::RLIMIT_CORE, Some(0))
}

/// Gives up root for good: no capabilities in any set (bounding included),
/// `nobody` as every uid and gid, and no way back through setuid binaries.
/// `clear_groups` is false in a user namespace, where group changes are
/// denied and the only group is the mapped one anyway.
fn drop_privileges(clear_groups: bool) -> Result<(), Failed> {
    caps::clear(None, caps::CapSet::Ambient).ctx(|| "clearing ambient capabilities".into())?;
    caps::clear(None, caps::CapSet::Inheritable).ctx(|| "clearing inheritable capabilities".into())?;
    caps::clear(None, caps::CapSet::Bounding).ctx(|| "clearing the bounding set".into())?;
    if clear_groups {
        setgroups(&[]).ctx(|| "setgroups".into())?;
    }
    let gid = Gid::from_raw(SANDBOX_ID);
    let uid = Uid::from_raw(SANDBOX_ID);
    setresgid(gid, gid, gid).ctx(|| "setresgid".into())?;
    setresuid(uid, uid, uid).ctx(|| "setresuid".into())?;
    prctl::set_no_new_privs().ctx(|| "no_new_privs".into())
}

fn cstring(s: &str) -> Result<CString, Failed> {
    CString::new(s).ctx(|| format!("{s:?} contains a NUL byte"))
}

/// Finds the program on the sandbox's `PATH` when it has no slash.
fn resolve(program: &str, env: &[(String, String)]) -> Result<CString, Failed> {
    if program.contains('/') {
        return cstring(program);
    }
    let path = env.iter().rev().find(|(k, _)| k == "PATH").map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v);
    path.split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| Failed(format!("{program} not found on PATH inside the sandbox ({path})")))
        .and_then(|p| cstring(&p.to_string_lossy()))
}
