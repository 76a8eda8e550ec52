//! The `none` backend: a plain child process with no isolation.
//!
//! Useful for trusted local servers and as the baseline the real backends are
//! measured against. It still guarantees no orphans: the child is killed when
//! its [`Instance`] is dropped and, through `PR_SET_PDEATHSIG`, when berth dies.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use tokio::process::{Child, Command};

use crate::{BoxFuture, ExitStatus, Instance, InstanceControl, Sandbox, SandboxError, SandboxSpec};

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
    cmd.args(&spec.args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for name in &spec.inherit_env {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| SandboxError::Spawn { program: spec.program.clone(), source })?;
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(SandboxError::InvalidSpec("child stdio was not piped".into()));
    };
    Ok(Instance {
        stdin: Box::new(stdin),
        stdout: Box::new(stdout),
        stderr: Box::new(stderr),
        control: Box::new(ProcessControl { child }),
    })
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

    fn wait(&mut self) -> BoxFuture<'_, Result<ExitStatus, SandboxError>> {
        Box::pin(async move {
            let status = self.child.wait().await.map_err(SandboxError::Control)?;
            Ok(match (status.code(), status.signal()) {
                (Some(code), _) => ExitStatus::Code(code),
                (None, Some(sig)) => ExitStatus::Signal(sig),
                (None, None) => ExitStatus::Code(-1),
            })
        })
    }

    fn kill(&mut self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move { self.child.kill().await.map_err(SandboxError::Control) })
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
    async fn missing_program_is_a_spawn_error() {
        let spec = SandboxSpec::command("/nonexistent/berth-test", Vec::<String>::new());
        let err = ProcessSandbox.launch(&spec).await.expect_err("must fail");
        assert!(matches!(err, SandboxError::Spawn { .. }), "{err}");
    }
}
