//! The `none` backend: a plain child process with no isolation.
//!
//! Useful for trusted local servers and as the baseline the real backends are
//! measured against. It still guarantees no orphans: the child is killed when
//! its [`Instance`] is dropped and, through `PR_SET_PDEATHSIG`, when berth dies.

use std::process::Stdio;
use std::sync::Arc;

use tokio::process::{Child, Command};

use crate::{
    BoxFuture, ExitStatus, Instance, InstanceControl, Sandbox, SandboxError, SandboxSpec, UsageProbe, no_usage,
};

/// Runs programs as ordinary children of berth.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessSandbox;

impl Sandbox for ProcessSandbox {
    fn name(&self) -> &'static str {
        "none"
    }

    fn launch<'a>(&'a self, spec: &'a SandboxSpec) -> BoxFuture<'a, Result<Instance, SandboxError>> {
        Box::pin(async move { spawn(spec) })
    }
}

fn spawn(spec: &SandboxSpec) -> Result<Instance, SandboxError> {
    if spec.program.is_empty() {
        return Err(SandboxError::InvalidSpec("empty program".into()));
    }
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args).env_clear().envs(spec.environment());
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    spawn_piped(&mut cmd, &spec.program, |child| Box::new(ProcessControl { child }))
}

/// Starts `cmd` with piped stdio, in its own process group (so that killing
/// it reaches the processes it starts: an `npx` or `uvx` launcher runs the
/// real server as a child), killed on drop and when berth dies; `control`
/// wraps the child in a backend's [`InstanceControl`].
pub(crate) fn spawn_piped(
    cmd: &mut Command,
    program: &str,
    control: impl FnOnce(Child) -> Box<dyn InstanceControl>,
) -> Result<Instance, SandboxError> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
    die_with_parent(cmd);
    let mut child = cmd.spawn().map_err(|source| SandboxError::Spawn { program: program.to_owned(), source })?;
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(SandboxError::InvalidSpec("child stdio was not piped".into()));
    };
    Ok(Instance { stdin: Box::new(stdin), stdout: Box::new(stdout), stderr: Box::new(stderr), control: control(child) })
}

/// Asks the kernel to SIGKILL the child when berth's thread that forked it
/// dies, so a `kill -9` of berth leaves no server running.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only makes the
    // async-signal-safe prctl syscall.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

struct ProcessControl {
    child: Child,
}

impl InstanceControl for ProcessControl {
    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    fn usage(&self) -> UsageProbe {
        let Some(pid) = self.child.id() else { return no_usage() };
        Arc::new(move || Box::pin(async move { crate::usage::of_process(pid) }))
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<ExitStatus, SandboxError>> {
        Box::pin(async move {
            let status = self.child.wait().await.map_err(SandboxError::Control)?;
            Ok(status.into())
        })
    }

    fn kill(&mut self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            kill_group(self.child.id());
            self.child.kill().await.map_err(SandboxError::Control)
        })
    }
}

impl Drop for ProcessControl {
    fn drop(&mut self) {
        kill_group(self.child.id());
    }
}

/// SIGKILLs the process group led by `pid` (a no-op once it is reaped).
pub(crate) fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn pipes_stdio_and_reports_exit() {
        let spec = SandboxSpec::command("sh", ["-c", "read x; echo \"got $x\"; echo err >&2; exit 7"]);
        let mut spec = spec;
        spec.inherit_env.push("PATH".into());
        let mut inst = ProcessSandbox.launch(&spec).await.expect("launch");
        inst.stdin.write_all(b"hello\n").await.expect("write");
        let mut out = String::new();
        inst.stdout.read_to_string(&mut out).await.expect("read");
        assert_eq!(out, "got hello\n");
        let mut err = String::new();
        inst.stderr.read_to_string(&mut err).await.expect("read");
        assert_eq!(err, "err\n");
        assert_eq!(inst.control.wait().await.expect("wait"), ExitStatus::Code(7));
    }

    #[tokio::test]
    async fn env_is_closed_by_default() {
        let spec = SandboxSpec::command("/usr/bin/env", Vec::<String>::new()).env("ONLY", "me");
        let mut inst = ProcessSandbox.launch(&spec).await.expect("launch");
        let mut out = String::new();
        inst.stdout.read_to_string(&mut out).await.expect("read");
        assert_eq!(out, "ONLY=me\n");
    }

    #[tokio::test]
    async fn kill_reaches_grandchildren() {
        let mut spec = SandboxSpec::command("sh", ["-c", "sleep 300 & echo $!; wait"]);
        spec.inherit_env.push("PATH".into());
        let mut inst = ProcessSandbox.launch(&spec).await.expect("launch");
        let mut line = String::new();
        let mut byte = [0u8; 1];
        while inst.stdout.read(&mut byte).await.expect("read") == 1 && byte[0] != b'\n' {
            line.push(byte[0] as char);
        }
        let grandchild = nix::unistd::Pid::from_raw(line.trim().parse().expect("pid"));
        inst.control.kill().await.expect("kill");
        drop(inst);
        for _ in 0..100 {
            // Reaped by init once dead; ESRCH or a zombie both mean gone.
            let gone = nix::sys::signal::kill(grandchild, None).is_err()
                || std::fs::read_to_string(format!("/proc/{grandchild}/stat")).is_ok_and(|s| s.contains(") Z "));
            if gone {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("grandchild {grandchild} survived");
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let spec = SandboxSpec::command("/nonexistent/berth-test", Vec::<String>::new());
        let err = ProcessSandbox.launch(&spec).await.expect_err("must fail");
        assert!(matches!(err, SandboxError::Spawn { .. }), "{err}");
    }
}
