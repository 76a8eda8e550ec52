//! One guest: its WASI context, its store with limits and deadline, and the
//! task that runs it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, InstancePre, Linker, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::cli::{AsyncStdinStream, AsyncStdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::cache::Compiled;
use super::clock::Clock;
use super::control::{GuestUsage, WasiControl};
use super::{DEFAULT_CPU_DEADLINE, DEFAULT_MEMORY, TICK};
use crate::{ExitStatus, Instance, SandboxError, SandboxSpec, TrapCause};

/// Buffer of each stdio pipe between berth and a guest.
const PIPE_BYTES: usize = 64 << 10;

/// The WASI imports for each kind of guest, linked once per engine.
pub(super) struct Linkers {
    p1: Linker<P1State>,
    p2: wasmtime::component::Linker<P2State>,
}

/// A guest linked and ready to instantiate.
pub(super) enum Loaded {
    Module(InstancePre<P1State>),
    Component(CommandPre<P2State>),
}

impl Linkers {
    pub(super) fn new(engine: &Engine) -> wasmtime::Result<Self> {
        let mut p1 = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut p1, |s: &mut P1State| &mut s.wasi)?;
        let mut p2 = wasmtime::component::Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut p2)?;
        Ok(Self { p1, p2 })
    }

    /// Resolves the guest's imports now, so each launch only instantiates.
    pub(super) fn prepare(&self, compiled: Compiled) -> wasmtime::Result<Loaded> {
        Ok(match compiled {
            Compiled::Module(m) => Loaded::Module(self.p1.instantiate_pre(&m)?),
            Compiled::Component(c) => Loaded::Component(CommandPre::new(self.p2.instantiate_pre(&c)?)?),
        })
    }
}

/// What the host keeps per guest besides WASI: its limits and why it ended.
pub(super) struct Host {
    limiter: Limiter,
    clock: Arc<Clock>,
    /// The tick at which input last arrived; the deadline counts from it.
    last_input: Arc<AtomicU64>,
    deadline_ticks: u64,
    killed: Arc<AtomicBool>,
    cpu_exceeded: bool,
}

pub(super) struct P1State {
    wasi: WasiP1Ctx,
    host: Host,
}

pub(super) struct P2State {
    ctx: WasiCtx,
    table: ResourceTable,
    host: Host,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

trait HasHost: Send + 'static {
    fn host(&mut self) -> &mut Host;
}

impl HasHost for P1State {
    fn host(&mut self) -> &mut Host {
        &mut self.host
    }
}

impl HasHost for P2State {
    fn host(&mut self) -> &mut Host {
        &mut self.host
    }
}

/// wasmtime's store limits, remembering whether a memory request was refused
/// (the guest usually aborts then, and its trap should say why).
struct Limiter {
    inner: StoreLimits,
    refused: bool,
    /// Bytes of linear memory the guest holds, for [`Usage`](crate::Usage).
    memory: Arc<AtomicU64>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        self.refused |= !ok;
        if ok {
            self.memory.fetch_add(desired.saturating_sub(current) as u64, Ordering::Relaxed);
        }
        Ok(ok)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Marks the time whenever input reaches the guest: the CPU deadline is the
/// time a guest may compute after its last input.
struct MarkInput<R> {
    inner: R,
    clock: Arc<Clock>,
    last_input: Arc<AtomicU64>,
}

impl<R: AsyncRead + Unpin> AsyncRead for MarkInput<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.last_input.store(self.clock.now(), Ordering::Relaxed);
        }
        res
    }
}

/// Builds the guest's world from the spec, instantiates it (so a guest that
/// cannot start is a launch error, not an exit), then runs it on its own task.
pub(super) async fn start(
    engine: &Engine,
    loaded: &Loaded,
    clock: &Arc<Clock>,
    spec: &SandboxSpec,
) -> Result<Instance, SandboxError> {
    // Duplex pipes used one way: unlike a split simplex, dropping one end
    // is an EOF at the other, in both directions.
    let (stdin_r, stdin_w) = tokio::io::duplex(PIPE_BYTES);
    let (stdout_r, stdout_w) = tokio::io::duplex(PIPE_BYTES);
    let (stderr_r, stderr_w) = tokio::io::duplex(PIPE_BYTES);
    let last_input = Arc::new(AtomicU64::new(clock.now()));
    let stdin = MarkInput { inner: stdin_r, clock: Arc::clone(clock), last_input: Arc::clone(&last_input) };

    let mut wasi = WasiCtxBuilder::new();
    wasi.stdin(AsyncStdinStream::new(stdin))
        .stdout(AsyncStdoutStream::new(PIPE_BYTES, stdout_w))
        .stderr(AsyncStdoutStream::new(PIPE_BYTES, stderr_w))
        .arg(&spec.program)
        .args(&spec.args)
        .envs(&spec.environment())
        // Closed by default, and said so: no sockets, no name lookups.
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    for mount in &spec.mounts {
        let guest = mount.inside().to_str().ok_or_else(|| {
            SandboxError::InvalidSpec(format!("mount {} is not UTF-8, which WASI needs", mount.inside().display()))
        })?;
        let perms = if mount.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        wasi.preopened_dir(&mount.path, guest, perms).map_err(|e| {
            SandboxError::InvalidSpec(format!("mount {} cannot be preopened: {e:?}", mount.path.display()))
        })?;
    }
    if let Some(cwd) = spec.cwd.as_deref().and_then(|c| c.to_str()) {
        wasi.initial_cwd(cwd);
    }

    let memory = spec.limits.memory.unwrap_or(DEFAULT_MEMORY);
    let deadline = spec.limits.cpu_deadline.unwrap_or(DEFAULT_CPU_DEADLINE);
    let killed = Arc::new(AtomicBool::new(false));
    let usage = GuestUsage::default();
    let host = Host {
        limiter: Limiter {
            inner: StoreLimitsBuilder::new().memory_size(usize::try_from(memory).unwrap_or(usize::MAX)).build(),
            refused: false,
            memory: Arc::clone(&usage.memory),
        },
        clock: Arc::clone(clock),
        last_input,
        deadline_ticks: u64::try_from(deadline.as_millis() / TICK.as_millis().max(1)).unwrap_or(u64::MAX).max(1),
        killed: Arc::clone(&killed),
        cpu_exceeded: false,
    };
    let failed = |e: wasmtime::Error| SandboxError::Module {
        path: spec.module.clone().unwrap_or_default(),
        message: format!("cannot instantiate: {e:?}"),
    };
    let task = match loaded {
        Loaded::Module(pre) => {
            let mut store = store(engine, P1State { wasi: wasi.build_p1(), host });
            let instance = pre.instantiate_async(&mut store).await.map_err(failed)?;
            let entry = instance.get_typed_func::<(), ()>(&mut store, "_start").map_err(failed)?;
            tokio::spawn(usage.timed(async move {
                let outcome = entry.call_async(&mut store, ()).await;
                exit_status(outcome.map(|()| 0), store)
            }))
        }
        Loaded::Component(pre) => {
            let mut store = store(engine, P2State { ctx: wasi.build(), table: ResourceTable::new(), host });
            let command = pre.instantiate_async(&mut store).await.map_err(failed)?;
            tokio::spawn(usage.timed(async move {
                let outcome = command.wasi_cli_run().call_run(&mut store).await;
                exit_status(outcome.map(|r| if r.is_ok() { 0 } else { 1 }), store)
            }))
        }
    };
    Ok(Instance {
        stdin: Box::new(stdin_w),
        stdout: Box::new(stdout_r),
        stderr: Box::new(stderr_r),
        control: Box::new(WasiControl::new(task, killed, usage)),
    })
}

/// A store with the guest's memory limit and CPU deadline.
fn store<T: HasHost>(engine: &Engine, state: T) -> Store<T> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.host().limiter);
    // Each tick the guest runs, check the deadline, then yield so that a
    // busy guest shares its thread (and a killed one can be dropped).
    store.epoch_deadline_callback(|mut cx| {
        let host = cx.data_mut().host();
        if host.killed.load(Ordering::Relaxed) {
            wasmtime::bail!("killed");
        }
        let busy = host.clock.now().saturating_sub(host.last_input.load(Ordering::Relaxed));
        if busy > host.deadline_ticks {
            host.cpu_exceeded = true;
            wasmtime::bail!("CPU deadline exceeded");
        }
        Ok(UpdateDeadline::Yield(1))
    });
    // The default deadline, 0, would trap at the first check.
    store.set_epoch_deadline(1);
    store
}

/// Turns how the guest's entry point returned into an exit status, and drops
/// the store, which closes the guest's stdout and stderr.
fn exit_status<T: HasHost>(outcome: wasmtime::Result<i32>, mut store: Store<T>) -> ExitStatus {
    let err = match outcome {
        Ok(code) => return ExitStatus::Code(code),
        Err(e) => e,
    };
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return ExitStatus::Code(exit.0);
    }
    let host = store.data_mut().host();
    let status = if host.cpu_exceeded {
        ExitStatus::Trap(TrapCause::CpuDeadline)
    } else if host.limiter.refused {
        ExitStatus::Trap(TrapCause::Memory)
    } else if host.killed.load(Ordering::Relaxed) {
        ExitStatus::Signal(libc::SIGKILL)
    } else {
        ExitStatus::Trap(TrapCause::Fault)
    };
    tracing::warn!(%status, error = ?err, "wasm guest trapped");
    status
}
