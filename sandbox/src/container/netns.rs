//! The container backend's way to its egress proxy: a listener on the
//! container's own loopback, opened by berth from inside the container's
//! network namespace.
//!
//! Why not an internal Docker network with the proxy on it: the proxy would
//! listen on a host address on that bridge, so every host service listening
//! on a wildcard address would be reachable from the container unless
//! firewall rules were added and kept in step (and this engine may run with
//! `--iptables=false`). Why not a forwarder process inside the container
//! like the native backend's: it would have to be a binary that runs in
//! whatever image the connector ships. A socket keeps the network namespace
//! it was created in, so a listener bound there by a short-lived thread of
//! berth's serves the container while berth holds it, and the container
//! keeps network `none`: no route anywhere, one listener on `127.0.0.1`.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, TcpListener};

use nix::sched::{CloneFlags, setns};

use crate::egress::PROXY_PORT;

/// Binds `127.0.0.1:`[`PROXY_PORT`] in the network namespace of process
/// `pid` (a host pid). Needs `CAP_SYS_ADMIN` (berth running as root).
pub(super) fn listen_in(pid: i64) -> io::Result<TcpListener> {
    let ns = File::open(format!("/proc/{pid}/ns/net"))?;
    // setns changes only the calling thread's namespace: a thread of its
    // own, which ends right after binding, so no other task runs there.
    std::thread::spawn(move || {
        setns(&ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        TcpListener::bind((Ipv4Addr::LOCALHOST, PROXY_PORT))
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?
}
