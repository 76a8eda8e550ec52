//! One cgroup per instance: memory, pids and CPU limits, and a way to kill
//! everything in it. Works on cgroup v1 (one hierarchy per controller) and v2
//! through cgroups-rs.

use std::path::PathBuf;

use cgroups_rs::fs::cgroup_builder::CgroupBuilder;
use cgroups_rs::fs::{Cgroup, MaxValue, hierarchies};

use crate::{Limits, SandboxError};

/// CFS period used to express CPU limits.
const CPU_PERIOD_US: u64 = 100_000;

/// The cgroup instances go under, in every hierarchy: `berth` for a root
/// berth; `berth-UID` for one running as UID, which an administrator
/// delegates to it (creates it and gives it to that user).
pub fn parent(uid: Option<u32>) -> String {
    uid.map_or_else(|| "berth".into(), |uid| format!("berth-{uid}"))
}

/// Fails early, with a reason, when instances' cgroups cannot be made under
/// `parent`: tried with a probe group that is removed again.
pub fn check(parent: &str) -> Result<(), SandboxError> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    if !root.exists() {
        return Err(SandboxError::Unsupported("no cgroup filesystem at /sys/fs/cgroup".into()));
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let probe = format!("{parent}/probe-{}", std::process::id());
    match CgroupBuilder::new(&probe).build(hierarchies::auto()) {
        Ok(group) => {
            let _ = group.delete();
            Ok(())
        }
        Err(e) => Err(SandboxError::Unsupported(format!(
            "berth is not root and cannot create cgroups under {parent} ({e}): give it that cgroup, e.g. \
             `mkdir DIR/{parent} && chown -R USER DIR/{parent}` for each DIR in /sys/fs/cgroup/* on cgroup v1"
        ))),
    }
}

/// An instance's cgroup, removed (with anything left in it) when dropped.
pub struct Group {
    cgroup: Cgroup,
}

impl Group {
    /// Creates `<parent>/<id>` with the given limits in every hierarchy.
    pub fn create(parent: &str, id: &str, limits: &Limits) -> Result<Self, SandboxError> {
        let mut b = CgroupBuilder::new(&format!("{parent}/{id}"));
        if let Some(mem) = limits.memory {
            let mem = i64::try_from(mem).unwrap_or(i64::MAX);
            b = b.memory().memory_hard_limit(mem).memory_swap_limit(mem).done();
        }
        if let Some(pids) = limits.pids {
            b = b.pid().maximum_number_of_processes(MaxValue::Value(i64::try_from(pids).unwrap_or(i64::MAX))).done();
        }
        if let Some(cpus) = limits.cpus {
            let quota = (cpus * CPU_PERIOD_US as f64).max(1000.0) as i64;
            b = b.cpu().period(CPU_PERIOD_US).quota(quota).done();
        }
        let cgroup = b
            .build(hierarchies::auto())
            .map_err(|e| SandboxError::Unsupported(format!("cannot create a cgroup for the instance: {e}")))?;
        Ok(Self { cgroup })
    }

    /// The `cgroup.procs` file of each hierarchy, for the init to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.cgroup
            .subsystems()
            .iter()
            .map(|s| s.to_controller().path().join("cgroup.procs"))
            .filter(|p| p.exists())
            .collect()
    }

    /// SIGKILLs every process in the group.
    pub fn kill_all(&self) {
        for pid in self.cgroup.procs() {
            if let Ok(pid) = i32::try_from(pid.pid) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Group {
    /// Kills what is left and removes the group.
    fn drop(&mut self) {
        for _ in 0..50 {
            if self.procs_files().is_empty() {
                return; // already removed (the init cleans up after itself)
            }
            self.kill_all();
            if self.cgroup.delete().is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        tracing::warn!("could not remove an instance cgroup: processes remain");
    }
}
