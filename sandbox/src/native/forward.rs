//! Inside the sandbox: the loopback interface and the forwarder from
//! `127.0.0.1:`[`PROXY_PORT`] to the egress proxy's unix socket.
//!
//! Why a unix socket and a forwarder rather than a veth pair into the
//! network namespace: a veth's host end is an address on the host, so every
//! host service listening on a wildcard address (berth itself, sshd, a
//! database) would be reachable from the sandbox unless firewall rules were
//! added and kept in step; the pair needs an address plan and `ip`/netlink
//! calls per launch; and a killed berth leaves addresses behind. A socket
//! file reaches exactly one listener, berth's proxy for this instance, and
//! the namespace keeps no route at all. The forwarder runs inside the
//! sandbox with the server's own privileges (none), so subverting it gains
//! nothing the server does not already have: a connection to the proxy.

use std::io;
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, fork};

use super::init::{Context, Failed};
use crate::egress::PROXY_PORT;

/// Brings `lo` up in the (new, empty) network namespace, so that
/// `127.0.0.1` exists for the forwarder to listen on.
#[allow(unsafe_code)]
pub(super) fn loopback_up() -> Result<(), Failed> {
    let sock = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ctx(|| "socket for lo".into())?;
    // SAFETY: `ifreq` is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: both ioctls read and write only the `ifreq` passed, which
    // lives for the call; the socket is open.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error()).ctx(|| "SIOCGIFFLAGS lo".into());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error()).ctx(|| "SIOCSIFFLAGS lo".into());
        }
    }
    Ok(())
}

/// Listens on `127.0.0.1:`[`PROXY_PORT`] and forks the forwarder, which
/// serves it until the namespace ends; the caller goes on to exec the server
/// (the listener is close-on-exec, so the server does not hold it).
///
/// The forwarder is thus the server's child: a server that waits for all of
/// its children before exiting would wait for it too (none of the Node or
/// Python servers berth hosts does; the namespace ends when the server does).
#[allow(unsafe_code)]
pub(super) fn start(socket: &Path) -> Result<(), Failed> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, PROXY_PORT)).ctx(|| format!("listening on 127.0.0.1:{PROXY_PORT}"))?;
    // SAFETY: PID 1 is single-threaded until it execs.
    match unsafe { fork() }.ctx(|| "fork (egress forwarder)".into())? {
        ForkResult::Parent { .. } => Ok(()),
        ForkResult::Child => {
            let _ = prctl::set_pdeathsig(Signal::SIGKILL);
            // Its own session and process group, so a server signalling its
            // group (as shells do on exit) does not take the forwarder along.
            let _ = nix::unistd::setsid();
            // The server's stdio is berth's channel to it; the forwarder
            // must not hold it open.
            if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
                let _ = nix::unistd::dup2_stdin(&null);
                let _ = nix::unistd::dup2_stdout(&null);
                let _ = nix::unistd::dup2_stderr(&null);
            }
            serve(listener, socket.to_path_buf());
            std::process::exit(0);
        }
    }
}

fn serve(listener: TcpListener, socket: PathBuf) {
    for conn in listener.incoming() {
        let Ok(tcp) = conn else { continue };
        let socket = socket.clone();
        // A thread that cannot start (the pids limit) drops the connection.
        let _ = std::thread::Builder::new().spawn(move || relay(tcp, &socket));
    }
}

/// Copies both ways between a client and a fresh proxy connection.
fn relay(tcp: TcpStream, socket: &Path) {
    let Ok(unix) = UnixStream::connect(socket) else { return };
    let (Ok(mut tcp_in), Ok(mut unix_out)) = (tcp.try_clone(), unix.try_clone()) else { return };
    let up = std::thread::Builder::new().spawn(move || {
        let _ = io::copy(&mut tcp_in, &mut unix_out);
        let _ = unix_out.shutdown(Shutdown::Write);
    });
    let (mut unix_in, mut tcp_out) = (unix, tcp);
    let _ = io::copy(&mut unix_in, &mut tcp_out);
    let _ = tcp_out.shutdown(Shutdown::Write);
    if let Ok(up) = up {
        let _ = up.join();
    }
}
