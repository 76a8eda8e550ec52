//! The backend against tiny hand-written guests (core modules in WAT); the
//! component path is covered end to end by `tests/test_wasi.py`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{WasiConfig, WasiSandbox};
use crate::{ExitStatus, Sandbox, SandboxError, SandboxSpec, TrapCause};

/// `cat`: copies stdin to stdout until EOF, through WASI p1.
const CAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 1024))
    (loop $next
      (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (if (i32.eqz (i32.load (i32.const 8))) (then (return)))
      (i32.store (i32.const 16) (i32.const 64))
      (i32.store (i32.const 20) (i32.load (i32.const 8)))
      (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 12)))
      (br $next))))"#;

/// Never waits, never ends.
const SPIN: &str = r#"(module (func (export "_start") (loop $l (br $l))))"#;

/// Grows its memory by 100 pages (6.25 MiB); traps if that is refused.
const GROW: &str = r#"(module
  (memory 1)
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable))))"#;

/// Exits with the code in its first argument's length (`proc_exit`).
const EXIT3: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))"#;

struct Guest {
    _dir: tempfile::TempDir,
    spec: SandboxSpec,
}

fn guest(wat: &str) -> Guest {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("guest.wasm");
    std::fs::write(&path, wat::parse_str(wat).expect("valid wat")).expect("write");
    Guest { spec: SandboxSpec::wasm(path, Vec::<String>::new()), _dir: dir }
}

fn sandbox() -> WasiSandbox {
    WasiSandbox::new(WasiConfig { max_instances: 4, ..WasiConfig::default() }).expect("engine")
}

async fn wait(inst: &mut crate::Instance) -> ExitStatus {
    wait_on(inst.control.as_mut()).await
}

async fn wait_on(control: &mut dyn crate::InstanceControl) -> ExitStatus {
    tokio::time::timeout(Duration::from_secs(20), control.wait()).await.expect("ends in time").expect("wait")
}

#[tokio::test]
async fn pipes_stdio_both_ways_and_exits_at_eof() {
    let g = guest(CAT);
    let mut inst = sandbox().launch(&g.spec).await.expect("launch");
    inst.stdin.write_all(b"hello\n").await.expect("write");
    let mut buf = [0u8; 6];
    inst.stdout.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"hello\n");
    // A second message after the first answer: a p1 guest must not stall.
    inst.stdin.write_all(b"again\n").await.expect("write");
    inst.stdout.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"again\n");
    let crate::Instance { stdin, mut control, .. } = inst;
    drop(stdin);
    assert_eq!(wait_on(control.as_mut()).await, ExitStatus::Code(0));
}

#[tokio::test]
async fn proc_exit_is_the_exit_code() {
    let g = guest(EXIT3);
    let mut inst = sandbox().launch(&g.spec).await.expect("launch");
    assert_eq!(wait(&mut inst).await, ExitStatus::Code(3));
}

#[tokio::test]
async fn a_runaway_guest_traps_at_its_cpu_deadline() {
    let mut g = guest(SPIN);
    g.spec.limits.cpu_deadline = Some(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let mut inst = sandbox().launch(&g.spec).await.expect("launch");
    assert_eq!(wait(&mut inst).await, ExitStatus::Trap(TrapCause::CpuDeadline));
    assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
}

#[tokio::test]
async fn kill_stops_a_computing_guest_and_a_waiting_one() {
    let sandbox = sandbox();
    for wat in [SPIN, CAT] {
        let g = guest(wat);
        let mut inst = sandbox.launch(&g.spec).await.expect("launch");
        tokio::time::sleep(Duration::from_millis(50)).await;
        inst.control.kill().await.expect("kill");
        assert_eq!(wait(&mut inst).await, ExitStatus::Signal(libc::SIGKILL));
    }
}

#[tokio::test]
async fn memory_is_limited_per_instance() {
    let sandbox = sandbox();
    let mut g = guest(GROW);
    g.spec.limits.memory = Some(4 << 20);
    let mut inst = sandbox.launch(&g.spec).await.expect("launch");
    assert_eq!(wait(&mut inst).await, ExitStatus::Trap(TrapCause::Memory));
    g.spec.limits.memory = Some(16 << 20);
    let mut inst = sandbox.launch(&g.spec).await.expect("launch");
    assert_eq!(wait(&mut inst).await, ExitStatus::Code(0));
}

#[tokio::test]
async fn compiled_code_is_cached_on_disk_and_reused() {
    let cache = tempfile::tempdir().expect("tempdir");
    let g = guest(EXIT3);
    for _ in 0..2 {
        // A fresh sandbox each time: nothing in memory, only the disk cache.
        let sandbox =
            WasiSandbox::new(WasiConfig { max_instances: 2, cache_dir: Some(cache.path().into()) }).expect("engine");
        let mut inst = sandbox.launch(&g.spec).await.expect("launch");
        assert_eq!(wait(&mut inst).await, ExitStatus::Code(3));
    }
    let entries: Vec<_> = std::fs::read_dir(cache.path()).expect("read").flatten().map(|e| e.file_name()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].to_string_lossy().ends_with(".module.cwasm"), "{entries:?}");
}

#[tokio::test]
async fn not_wasm_is_a_module_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.wasm");
    std::fs::write(&path, b"#!/bin/sh\n").expect("write");
    let err = sandbox().launch(&SandboxSpec::wasm(&path, Vec::<String>::new())).await.expect_err("must fail");
    assert!(matches!(err, SandboxError::Module { .. }), "{err}");
    let err = sandbox().launch(&SandboxSpec::command("x", Vec::<String>::new())).await.expect_err("must fail");
    assert!(matches!(err, SandboxError::InvalidSpec(_)), "{err}");
}

#[tokio::test]
async fn a_guest_that_cannot_instantiate_is_a_launch_error() {
    // One page (64 KiB) of initial memory does not fit a 32 KiB limit.
    let mut g = guest(GROW);
    g.spec.limits.memory = Some(32 << 10);
    let err = sandbox().launch(&g.spec).await.expect_err("must fail");
    assert!(matches!(err, SandboxError::Module { .. }), "{err}");
}

#[tokio::test]
async fn a_cache_directory_others_may_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let cache = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let sandbox =
        WasiSandbox::new(WasiConfig { max_instances: 2, cache_dir: Some(cache.path().into()) }).expect("engine");
    let g = guest(EXIT3);
    let mut inst = sandbox.launch(&g.spec).await.expect("launch");
    assert_eq!(wait(&mut inst).await, ExitStatus::Code(3));
    assert_eq!(std::fs::read_dir(cache.path()).expect("read").count(), 0);
}

#[tokio::test]
async fn usage_counts_a_guests_computing_and_its_memory() {
    let sandbox = sandbox();
    // Waiting for input costs no CPU time.
    let g = guest(CAT);
    let inst = sandbox.launch(&g.spec).await.expect("launch");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = (inst.control.usage())().await;
    assert!(idle.cpu.is_some_and(|c| c < Duration::from_millis(100)), "{idle:?}");
    assert_eq!(idle.memory, Some(64 << 10), "one page");
    // Spinning does.
    let g = guest(SPIN);
    let mut inst = sandbox.launch(&g.spec).await.expect("launch");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = (inst.control.usage())().await;
    assert!(busy.cpu.is_some_and(|c| c >= Duration::from_millis(100)), "{busy:?}");
    inst.control.kill().await.expect("kill");
    // Grown memory is counted.
    let mut g = guest(GROW);
    g.spec.limits.memory = Some(16 << 20);
    let mut inst = sandbox.launch(&g.spec).await.expect("launch");
    let probe = inst.control.usage();
    assert_eq!(wait(&mut inst).await, ExitStatus::Code(0));
    assert_eq!(probe().await.memory, Some(101 * (64 << 10)));
}
