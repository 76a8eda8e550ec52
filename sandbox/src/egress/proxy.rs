//! The proxy itself: reads one bounded request head per connection, checks
//! it with the [`Allowlist`], and splices the tunnel.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::task::{JoinHandle, JoinSet};

use super::allow::{Allowlist, Decision, EgressError, Refusal};

/// Largest request head accepted: a CONNECT line and a few headers fit in
/// far less; anything bigger is not a client we serve.
const MAX_HEAD: usize = 8 << 10;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long resolving and connecting to the destination may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most tunnels one instance may hold open at once: well above what a
/// connector needs, and a bound on the host sockets and tasks a hostile one
/// can make berth hold (it can reach the socket directly, past the
/// forwarder's own thread limit).
const MAX_CONNECTIONS: usize = 256;
/// The socket's name inside an instance's proxy directory.
const SOCKET: &str = "proxy.sock";
/// A tunnel with no byte either way for this long is closed, so a
/// connector cannot hold host sockets (and the destination's) open forever.
const TUNNEL_IDLE: Duration = Duration::from_secs(300);
/// Prefix of proxy directories in the scratch directory, for the sweep.
pub(crate) const DIR_PREFIX: &str = "egress-";

/// One instance's running proxy: a unix socket in its own directory (which
/// the sandbox gets as a read-only mount) and the task serving it. Dropping
/// it stops the listener and every open tunnel, and removes the socket.
#[derive(Debug)]
pub struct EgressProxy {
    dir: PathBuf,
    socket: PathBuf,
    _serving: Serving,
}

/// A proxy serving a listener; dropping it stops the listener and every
/// open tunnel.
#[derive(Debug)]
pub struct Serving(JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `allow` on a TCP listener that already exists: the container
/// backend's, bound on a container's loopback from inside its network
/// namespace. Needs a tokio runtime.
pub fn serve_tcp(listener: std::net::TcpListener, allow: Allowlist, label: String) -> std::io::Result<Serving> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    Ok(Serving(tokio::spawn(serve(listener, Arc::new(allow), label))))
}

impl EgressProxy {
    /// Creates `dir` (which must not exist), listens on `dir/proxy.sock`
    /// and serves `allow` there. Needs a tokio runtime. `label` names the
    /// instance in logs.
    pub fn start(dir: PathBuf, allow: Allowlist, label: String) -> Result<Self, EgressError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| EgressError::Listen { path, source }
        };
        std::fs::create_dir(&dir).map_err(err(&dir))?;
        // The sandbox user must traverse the directory and connect to the
        // socket; nothing else in it is theirs to see.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).map_err(err(&dir))?;
        let socket = dir.join(SOCKET);
        let listener = UnixListener::bind(&socket).map_err(err(&socket))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).map_err(err(&socket))?;
        let serving = Serving(tokio::spawn(serve(listener, Arc::new(allow), label)));
        Ok(Self { dir, socket, _serving: serving })
    }

    /// The directory holding the socket.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The socket the sandbox connects to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Removes proxy directories under `scratch` left by a berth that was
    /// killed: those whose socket no longer accepts connections (a live
    /// berth's, possibly another process's, still does and is kept).
    pub fn sweep(scratch: &Path) {
        let Ok(entries) = std::fs::read_dir(scratch) else { return };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
                continue;
            }
            let dir = entry.path();
            let socket = dir.join(SOCKET);
            if std::os::unix::net::UnixStream::connect(&socket).is_err() {
                let _ = std::fs::remove_file(&socket);
                if std::fs::remove_dir(&dir).is_ok() {
                    tracing::debug!(dir = %dir.display(), "removed a stale egress proxy directory");
                }
            }
        }
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// What a proxy accepts its clients' connections from.
trait Accept: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_stream(&self) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Accept for UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_stream(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Accept for TcpListener {
    type Stream = TcpStream;
    async fn accept_stream(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Accepts connections until aborted; aborting it drops the set of
/// connection tasks, which ends every tunnel.
async fn serve(listener: impl Accept, allow: Arc<Allowlist>, label: String) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept_stream() => match accepted {
                Ok(stream) if conns.len() >= MAX_CONNECTIONS => {
                    tracing::warn!(instance = %label, limit = MAX_CONNECTIONS, "egress refused: too many open tunnels");
                    drop(stream);
                }
                Ok(stream) => {
                    let allow = allow.clone();
                    let label = label.clone();
                    conns.spawn(async move { serve_connection(stream, &allow, &label).await });
                }
                Err(e) => {
                    tracing::warn!(instance = %label, error = %e, "egress proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Serves one client connection: one request head, then a tunnel or a
/// refusal. Returns when the tunnel closes.
pub async fn serve_connection<S>(mut client: S, allow: &Allowlist, label: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (destination, upstream, rest) = match open(&mut client, allow).await {
        Ok(opened) => opened,
        // A probe (the sweep checking whether this socket is alive) or a
        // client that gave up: nothing was asked, nothing to refuse.
        Err(Failure::Silent) => return,
        Err(Failure::Refused(destination, refusal)) => {
            tracing::warn!(instance = %label, %destination, reason = %refusal, "egress refused");
            let status = refusal.status();
            let reason = match status {
                400 => "Bad Request",
                502 => "Bad Gateway",
                _ => "Forbidden",
            };
            let body = format!("berth egress proxy: {destination}: {refusal}\n");
            let answer = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(answer.as_bytes()).await;
            let _ = client.shutdown().await;
            return;
        }
    };
    let peer = upstream.peer_addr().ok();
    tracing::info!(instance = %label, %destination, ?peer, "egress tunnel opened");
    let mut upstream = upstream;
    if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.is_err()
        || upstream.write_all(&rest).await.is_err()
    {
        return;
    }
    if splice(client, upstream, TUNNEL_IDLE).await == Ended::Idle {
        tracing::info!(instance = %label, %destination, "egress tunnel closed after {}s idle", TUNNEL_IDLE.as_secs());
    } else {
        tracing::debug!(instance = %label, %destination, "egress tunnel closed");
    }
}

/// How a tunnel ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// Both sides finished (or one failed).
    Closed,
    /// Nothing moved for the idle limit.
    Idle,
}

/// Copies both ways until both sides have finished, passing on each
/// half-close; gives up when nothing moves either way for `idle`.
async fn splice<A, B>(a: A, b: B, idle: Duration) -> Ended
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let ((mut a_read, mut a_write), (mut b_read, mut b_write)) = (tokio::io::split(a), tokio::io::split(b));
    let (mut from_a, mut from_b) = (vec![0u8; 16 << 10], vec![0u8; 16 << 10]);
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        // A fresh timer each turn: any byte either way restarts the count.
        tokio::select! {
            n = a_read.read(&mut from_a), if a_open => match n {
                Ok(n) if n > 0 => if b_write.write_all(&from_a[..n]).await.is_err() { return Ended::Closed },
                _ => { a_open = false; let _ = b_write.shutdown().await; }
            },
            n = b_read.read(&mut from_b), if b_open => match n {
                Ok(n) if n > 0 => if a_write.write_all(&from_b[..n]).await.is_err() { return Ended::Closed },
                _ => { b_open = false; let _ = a_write.shutdown().await; }
            },
            _ = tokio::time::sleep(idle) => return Ended::Idle,
        }
    }
    Ended::Closed
}

/// Why no tunnel was opened.
enum Failure {
    /// The client closed the connection without sending a byte.
    Silent,
    /// What was asked for (for the log) and why it was refused.
    Refused(String, Refusal),
}

/// Reads and checks the request and connects.
async fn open<S>(client: &mut S, allow: &Allowlist) -> Result<(String, TcpStream, Vec<u8>), Failure>
where
    S: AsyncRead + Unpin,
{
    let (head, rest) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(client)).await {
        Ok(Ok(Some(read))) => read,
        Ok(Ok(None)) => return Err(Failure::Silent),
        Ok(Err(r)) => return Err(Failure::Refused("-".into(), r)),
        Err(_) => return Err(Failure::Refused("-".into(), Refusal::Malformed("request head timed out"))),
    };
    let (method, target) = request_line(&head).map_err(|r| Failure::Refused("-".to_owned(), r))?;
    let destination = target.chars().take(300).collect::<String>();
    if method != "CONNECT" {
        let refusal = if target.starts_with("http://") || target.starts_with("https://") {
            Refusal::PlainHttp
        } else {
            Refusal::Malformed("only CONNECT is proxied")
        };
        return Err(Failure::Refused(destination, refusal));
    }
    let fail = |r| Failure::Refused(destination.clone(), r);
    let addrs = match allow.decide(target).map_err(fail)? {
        Decision::Connect(addr) => vec![addr],
        Decision::Resolve(name, port) => {
            let resolved = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((name.as_str(), port)))
                .await
                .map_err(|_| fail(Refusal::Unreachable("name resolution timed out".into())))?
                .map_err(|e| fail(Refusal::Unreachable(format!("name resolution failed: {e}"))))?;
            Allowlist::screen(resolved).map_err(fail)?
        }
    };
    let upstream = tokio::time::timeout(CONNECT_TIMEOUT, connect_any(&addrs))
        .await
        .map_err(|_| fail(Refusal::Unreachable("connect timed out".into())))?
        .map_err(|e| fail(Refusal::Unreachable(e.to_string())))?;
    Ok((destination, upstream, rest))
}

/// Connects to the first of `addrs` that answers: exactly the addresses
/// that were checked, never a fresh resolution.
async fn connect_any(addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other("no address to connect to");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Reads up to the blank line ending the head; returns the head and any
/// bytes after it (the client may pipeline its first tunnel bytes); `None`
/// if the client closed the connection without sending anything.
async fn read_head<S: AsyncRead + Unpin>(client: &mut S) -> Result<Option<(Vec<u8>, Vec<u8>)>, Refusal> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = head_end(&buf) {
            let rest = buf.split_off(end);
            return Ok(Some((buf, rest)));
        }
        if buf.len() >= MAX_HEAD {
            return Err(Refusal::Malformed("request head too large"));
        }
        let n = client.read(&mut chunk).await.map_err(|_| Refusal::Malformed("read failed"))?;
        if n == 0 && buf.is_empty() {
            return Ok(None);
        }
        if n == 0 {
            return Err(Refusal::Malformed("connection closed before the request head ended"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The offset just past `\r\n\r\n` (or a bare `\n\n`), if present.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The method and target of an HTTP/1.x request line.
fn request_line(head: &[u8]) -> Result<(&str, &str), Refusal> {
    let text = std::str::from_utf8(head).map_err(|_| Refusal::Malformed("request head is not UTF-8"))?;
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None) if version.starts_with("HTTP/1.") && !target.is_empty() => {
            Ok((method, target))
        }
        _ => Err(Refusal::Malformed("bad request line")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;
    use tokio::net::TcpListener;

    /// Sends `request` through a proxy serving `allow`; returns its answer's
    /// first line and, for a tunnel, the stream to talk through.
    async fn ask(allow: &[&str], request: &str) -> (String, tokio::io::DuplexStream) {
        let allow = Allowlist::parse(allow).expect("allowlist");
        let (mut client, server) = duplex(64 << 10);
        tokio::spawn(async move { serve_connection(server, &allow, "test").await });
        client.write_all(request.as_bytes()).await.expect("write");
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if client.read(&mut byte).await.expect("read") == 0 {
                break;
            }
            line.push(byte[0]);
        }
        (String::from_utf8_lossy(&line).trim_end().to_owned(), client)
    }

    #[tokio::test]
    async fn a_tunnel_carries_both_ways_and_closes_when_idle() {
        let (mut client, near) = duplex(1024);
        let (far, mut server) = duplex(1024);
        let tunnel = tokio::spawn(splice(near, far, Duration::from_millis(200)));
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        // Traffic within the limit keeps it open…
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            client.write_all(b"x").await.unwrap();
            server.read_exact(&mut buf[..1]).await.unwrap();
        }
        assert!(!tunnel.is_finished());
        // …silence past it closes both sides.
        assert_eq!(tunnel.await.unwrap(), Ended::Idle);
        assert_eq!(client.read(&mut buf).await.unwrap(), 0, "the client sees the end");
    }

    #[tokio::test]
    async fn a_half_close_is_passed_on_and_the_rest_still_flows() {
        let (mut client, near) = duplex(1024);
        let (far, mut server) = duplex(1024);
        let tunnel = tokio::spawn(splice(near, far, Duration::from_secs(5)));
        client.write_all(b"request").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request");
        server.write_all(b"answer").await.unwrap();
        server.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"answer");
        assert_eq!(tunnel.await.unwrap(), Ended::Closed);
    }

    #[tokio::test]
    async fn allowlisted_loopback_literal_is_tunnelled() {
        let server = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = server.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (mut s, _) = server.accept().await.expect("accept");
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.expect("read");
            s.write_all(&buf).await.expect("echo");
        });
        let entry = format!("127.0.0.1:{port}");
        let (status, mut tunnel) =
            ask(&[&entry], &format!("CONNECT {entry} HTTP/1.1\r\nHost: {entry}\r\n\r\nhel")).await;
        assert_eq!(status, "HTTP/1.1 200 Connection established");
        let mut blank = [0u8; 2];
        tunnel.read_exact(&mut blank).await.expect("blank line");
        tunnel.write_all(b"lo").await.expect("write");
        let mut echo = [0u8; 5];
        tunnel.read_exact(&mut echo).await.expect("echo");
        assert_eq!(&echo, b"hello");
    }

    #[tokio::test]
    async fn refusals_answer_403() {
        for target in ["127.0.0.1:8377", "10.0.0.1:80", "169.254.169.254:80", "example.net:443"] {
            let (status, _) = ask(&["example.com", "127.0.0.1:1"], &format!("CONNECT {target} HTTP/1.1\r\n\r\n")).await;
            assert_eq!(status, "HTTP/1.1 403 Forbidden", "{target}");
        }
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused() {
        let (status, _) = ask(&["localhost:80"], "CONNECT localhost:80 HTTP/1.1\r\n\r\n").await;
        assert_eq!(status, "HTTP/1.1 403 Forbidden");
    }

    #[tokio::test]
    async fn plain_http_is_refused() {
        let (status, _) = ask(&["example.com:80"], "GET http://example.com/ HTTP/1.1\r\n\r\n").await;
        assert_eq!(status, "HTTP/1.1 403 Forbidden");
    }

    #[tokio::test]
    async fn malformed_and_oversized_heads_get_400() {
        let (status, _) = ask(&["example.com"], "CONNECT\r\n\r\n").await;
        assert_eq!(status, "HTTP/1.1 400 Bad Request");
        let big = format!("CONNECT example.com:443 HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let (status, _) = ask(&["example.com"], &big).await;
        assert_eq!(status, "HTTP/1.1 400 Bad Request");
    }

    #[tokio::test]
    async fn the_sweep_removes_only_dead_proxies() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let live =
            EgressProxy::start(scratch.path().join("egress-live"), Allowlist::default(), "live".into()).expect("start");
        let dead = scratch.path().join("egress-dead");
        std::fs::create_dir(&dead).expect("mkdir");
        // A socket file nobody listens on any more, as a killed berth leaves it.
        drop(std::os::unix::net::UnixListener::bind(dead.join(SOCKET)).expect("bind"));
        let other = scratch.path().join("unrelated");
        std::fs::create_dir(&other).expect("mkdir");
        EgressProxy::sweep(scratch.path());
        assert!(!dead.exists());
        assert!(live.socket().exists() && other.exists());
        let dir = live.dir().to_path_buf();
        drop(live);
        assert!(!dir.exists(), "dropping the proxy removes its directory");
    }
}
