//! Tools that each attempt one escape or abuse and report what happened, so
//! the sandbox escape suite can drive them over MCP. They never hide a
//! failure: every outcome is reported as data for the test to judge.

#![allow(unsafe_code)] // raw system calls are the point of a hostile probe.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};

/// Reads a file (at most 64 KiB): `{ok, content}` or `{ok: false, error}`.
pub fn read_file(path: &str) -> Value {
    match std::fs::read(path) {
        Ok(mut bytes) => {
            bytes.truncate(64 << 10);
            json!({"ok": true, "content": String::from_utf8_lossy(&bytes)})
        }
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

/// Lists a directory's entry names.
pub fn list_dir(path: &str) -> Value {
    match std::fs::read_dir(path) {
        Ok(rd) => {
            let mut names: Vec<String> =
                rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into()).collect();
            names.sort();
            json!({"ok": true, "entries": names})
        }
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

/// Selected lines of `/proc/self/status`.
pub fn status() -> Value {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mut out = serde_json::Map::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':')
            && ["CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh", "NoNewPrivs", "Seccomp", "Uid", "Gid"].contains(&k)
        {
            out.insert(k.to_owned(), v.trim().into());
        }
    }
    Value::Object(out)
}

fn errno_of(ret: libc::c_long) -> String {
    if ret < 0 { std::io::Error::last_os_error().to_string() } else { "ok".into() }
}

/// The destructive probes refuse to run as root: unconfined, they would
/// really mount, chroot or fork-bomb the host. In a sandbox they run as nobody.
pub fn refuse_as_root() -> Option<Value> {
    nix_is_root().then(|| json!({"ok": false, "error": "refusing to attack the host as root; run me in a sandbox"}))
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Tries system calls an escape needs; reports each outcome.
pub fn syscalls() -> Value {
    if let Some(refused) = refuse_as_root() {
        return refused;
    }
    let target = c"/tmp";
    let tmpfs = c"tmpfs";
    // SAFETY: each call passes valid pointers or integers; failures are the expected outcome.
    unsafe {
        json!({
            "mount": errno_of(libc::mount(tmpfs.as_ptr(), target.as_ptr(), tmpfs.as_ptr(), 0, std::ptr::null()) as libc::c_long),
            "unshare_user": errno_of(libc::unshare(libc::CLONE_NEWUSER) as libc::c_long),
            "unshare_mount": errno_of(libc::unshare(libc::CLONE_NEWNS) as libc::c_long),
            "ptrace": errno_of(libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0)),
            "bpf": errno_of(libc::syscall(libc::SYS_bpf, 0, 0, 0)),
            "keyctl": errno_of(libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0)),
            "setuid_root": errno_of(libc::setuid(0) as libc::c_long),
            "chroot": errno_of(libc::chroot(target.as_ptr()) as libc::c_long),
            "clone_newuser": clone_newuser(),
        })
    }
}

/// Tries to create a user namespace with a raw `clone` (fork-like: the child,
/// if there is one, exits at once).
unsafe fn clone_newuser() -> String {
    // SAFETY: without CLONE_VM the child gets a copy of memory, as with fork,
    // and immediately calls the async-signal-safe _exit.
    unsafe {
        let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong;
        let pid = libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize);
        if pid == 0 {
            libc::_exit(0);
        }
        if pid > 0 {
            libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
            return "ok".into();
        }
        errno_of(pid)
    }
}

/// Starts up to `n` processes that sleep; reports how many started.
pub fn fork_bomb(n: u32) -> Value {
    if let Some(refused) = refuse_as_root() {
        return refused;
    }
    let mut children = Vec::new();
    let mut error = None;
    for _ in 0..n {
        match std::process::Command::new("/bin/sleep").arg("30").spawn() {
            Ok(c) => children.push(c),
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let started = children.len();
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    json!({"started": started, "error": error})
}

/// Allocates and touches `mb` MiB; reports if it survived.
pub fn alloc(mb: u64) -> Value {
    if let Some(refused) = refuse_as_root() {
        return refused;
    }
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for _ in 0..mb {
        blocks.push(vec![1u8; 1 << 20]);
    }
    json!({"allocated_mb": blocks.len()})
}

/// Writes `bytes` to `path`; reports how far it got.
pub fn write_file(path: &str, bytes: u64, keep: bool) -> Value {
    if let Some(refused) = refuse_as_root() {
        return refused;
    }
    let mut f = match std::fs::File::create(path) {
        Ok(f) => f,
        Err(e) => return json!({"ok": false, "written": 0, "error": e.to_string()}),
    };
    let chunk = vec![b'x'; 1 << 20];
    let mut written = 0u64;
    while written < bytes {
        let n = chunk.len().min((bytes - written) as usize);
        if let Err(e) = f.write_all(&chunk[..n]) {
            let _ = std::fs::remove_file(path);
            return json!({"ok": false, "written": written, "error": e.to_string()});
        }
        written += n as u64;
    }
    if !keep {
        let _ = std::fs::remove_file(path);
    }
    json!({"ok": true, "written": written})
}

/// Opens `/dev/null` up to `n` times; reports how many succeeded.
pub fn open_files(n: u32) -> Value {
    if let Some(refused) = refuse_as_root() {
        return refused;
    }
    let mut files = Vec::new();
    let mut error = None;
    for _ in 0..n {
        match std::fs::File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    json!({"opened": files.len(), "error": error})
}

/// Tries a TCP connection (1 s timeout).
pub fn connect(addr: &str) -> Value {
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => return json!({"ok": false, "error": e.to_string()}),
    };
    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Ok(_) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

/// Spins on the CPU for `ms` of wall time; reports the CPU time it got, so a
/// test can see a CPU quota at work.
pub fn spin(ms: u64) -> Value {
    let cpu = || {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a valid out-pointer for clock_gettime.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    };
    let start = std::time::Instant::now();
    let cpu0 = cpu();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(ms) {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    let wall = start.elapsed().as_secs_f64();
    json!({"wall_s": wall, "cpu_s": cpu() - cpu0, "ratio": (cpu() - cpu0) / wall, "x": x})
}

/// Largest proxy or server answer read back (a status line and a small body).
const MAX_ANSWER: usize = 64 << 10;

/// Asks the proxy in `HTTPS_PROXY` for a `CONNECT` tunnel to `target`
/// (`host:port`), then sends `GET /` through it: `{ok, proxy, status,
/// answer}` with the proxy's status line (and body, on refusal), or the
/// tunnelled server's answer on success.
pub fn proxy_connect(target: &str) -> Value {
    let Ok(proxy) = std::env::var("HTTPS_PROXY") else {
        return json!({"ok": false, "error": "HTTPS_PROXY is not set"});
    };
    match tunnel(&proxy, target) {
        Ok((status, answer)) => json!({"ok": status == 200, "proxy": proxy, "status": status, "answer": answer}),
        Err(e) => json!({"ok": false, "proxy": proxy, "error": e.to_string()}),
    }
}

fn tunnel(proxy: &str, target: &str) -> std::io::Result<(u16, String)> {
    use std::io::Read;
    let addr: SocketAddr = proxy
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .map_err(|e| std::io::Error::other(format!("proxy address {proxy}: {e}")))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n")?;
    // The proxy's head, byte by byte so nothing of the tunnel is consumed.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < MAX_ANSWER {
        if s.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.split(' ').nth(1).and_then(|c| c.parse::<u16>().ok()).unwrap_or(0);
    let mut rest = Vec::new();
    if status == 200 {
        write!(s, "GET / HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")?;
    }
    let _ = s.take(MAX_ANSWER as u64).read_to_end(&mut rest);
    let answer = if status == 200 {
        String::from_utf8_lossy(&rest).into_owned()
    } else {
        head + &String::from_utf8_lossy(&rest)
    };
    Ok((status, answer))
}
