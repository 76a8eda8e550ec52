//! The seccomp filter: system calls a connector never needs and an escape
//! often does fail with `EPERM`.
//!
//! A deny-list rather than an allow-list: Node and Python runtimes use a wide
//! and version-dependent set of calls, and an allow-list that misses one
//! breaks a connector in ways that are hard to diagnose. The namespaces,
//! the dropped capabilities and `no_new_privs` are the first line; this
//! removes the kernel surface behind the known escapes.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use super::init::{Context, Failed};

/// Refused system calls (the container backend refuses the same ones).
pub(crate) const DENIED: &[(&str, i64)] = &[
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("syslog", libc::SYS_syslog),
    ("acct", libc::SYS_acct),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("fsopen", libc::SYS_fsopen),
    ("fsmount", libc::SYS_fsmount),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
];

/// `clone` flags that create namespaces: refused, so that a sandboxed
/// process cannot gain capabilities in a user namespace of its own.
pub(crate) const NAMESPACE_FLAGS: [i32; 7] = [
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWCGROUP,
];

/// Installs the filters on the calling thread (inherited across exec):
/// `EPERM` for the denied calls and for `clone` with any namespace flag, and
/// `ENOSYS` for `clone3`, whose flags sit behind a pointer a filter cannot
/// read; libc then falls back to `clone`, which the first filter checks.
pub(super) fn apply() -> Result<(), Failed> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).ctx(|| "seccomp target".into())?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED.iter().map(|(_, nr)| (*nr, Vec::new())).collect();
    // One rule per flag; a call matching any of them is refused.
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            let flag = flag as u64;
            let cond = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(flag), flag)
                .ctx(|| "seccomp condition".into())?;
            SeccompRule::new(vec![cond]).ctx(|| "seccomp rule".into())
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    install(rules, libc::EPERM, arch)?;
    install(BTreeMap::from([(libc::SYS_clone3, Vec::new())]), libc::ENOSYS, arch)
}

fn install(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32, arch: TargetArch) -> Result<(), Failed> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno as u32), arch)
        .ctx(|| "building a seccomp filter".into())?;
    let program: BpfProgram = filter.try_into().ctx(|| "compiling a seccomp filter".into())?;
    seccompiler::apply_filter(&program).ctx(|| "installing a seccomp filter".into())
}
