//! Writing to a server's stdin without a task hop on the common path.
//!
//! Most lines fit in the pipe at once, so the caller's task writes them
//! itself (one non-blocking `poll_write`), saving a wake-up of another task
//! per request. Whatever does not fit, or arrives while earlier bytes are
//! still waiting, goes to a backlog that a writer task drains in order, so
//! lines are never interleaved and a full pipe never blocks a caller.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, watch};

type Writer = Box<dyn AsyncWrite + Send + Unpin>;

struct State {
    /// The pipe; `None` while the writer task is using it.
    writer: Option<Writer>,
    /// Bytes waiting for the writer task, in order.
    backlog: Vec<u8>,
    /// The pipe broke or was closed.
    closed: bool,
}

/// A server's stdin, shared by every caller.
#[derive(Clone)]
pub struct Stdin {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

impl Stdin {
    /// Takes over `writer` and starts the task that drains the backlog; the
    /// pipe is closed when `stop` turns true.
    pub fn start(writer: Writer, stop: watch::Receiver<bool>, on_broken: impl FnOnce() + Send + 'static) -> Self {
        let me = Self {
            state: Arc::new(Mutex::new(State { writer: Some(writer), backlog: Vec::new(), closed: false })),
            wake: Arc::new(Notify::new()),
        };
        tokio::spawn(me.clone().drain(stop, on_broken));
        me
    }

    /// Queues one line (a newline is added). Returns false if the pipe is closed.
    pub fn send(&self, line: &str) -> bool {
        let mut st = self.state.lock();
        if st.closed {
            return false;
        }
        if st.backlog.is_empty()
            && let Some(w) = st.writer.as_mut()
        {
            let mut buf = Vec::with_capacity(line.len() + 1);
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            let mut cx = Context::from_waker(Waker::noop());
            match Pin::new(w).poll_write(&mut cx, &buf) {
                Poll::Ready(Ok(n)) if n == buf.len() => return true,
                Poll::Ready(Ok(n)) => st.backlog.extend_from_slice(&buf[n..]),
                Poll::Ready(Err(_)) => {
                    st.closed = true;
                    drop(st);
                    self.wake.notify_one();
                    return false;
                }
                Poll::Pending => st.backlog.extend_from_slice(&buf),
            }
            drop(st);
            self.wake.notify_one();
            return true;
        }
        st.backlog.extend_from_slice(line.as_bytes());
        st.backlog.push(b'\n');
        drop(st);
        self.wake.notify_one();
        true
    }

    async fn drain(self, mut stop: watch::Receiver<bool>, on_broken: impl FnOnce()) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = stop.changed() => break,
            }
            loop {
                let (mut writer, chunk) = {
                    let mut st = self.state.lock();
                    if st.closed || st.backlog.is_empty() {
                        break;
                    }
                    let Some(w) = st.writer.take() else { break };
                    (w, std::mem::take(&mut st.backlog))
                };
                let ok = writer.write_all(&chunk).await.is_ok() && writer.flush().await.is_ok();
                let mut st = self.state.lock();
                st.writer = Some(writer);
                if !ok {
                    st.closed = true;
                }
            }
            if self.state.lock().closed {
                break;
            }
        }
        let writer = {
            let mut st = self.state.lock();
            st.closed = true;
            st.writer.take()
        };
        on_broken();
        if let Some(mut w) = writer {
            let _ = w.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn lines_arrive_whole_and_in_order_when_the_pipe_fills() {
        // A 64-byte pipe: most lines overflow into the backlog.
        let (w, mut r) = tokio::io::duplex(64);
        let (_stop_tx, stop) = watch::channel(false);
        let stdin = Stdin::start(Box::new(w), stop, || {});
        let lines: Vec<String> =
            (0..200).map(|i| format!("{{\"line\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 50))).collect();
        let expected: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; expected.len()];
            r.read_exact(&mut got).await.map(|_| (String::from_utf8(got).unwrap(), expected))
        });
        for l in &lines {
            assert!(stdin.send(l));
        }
        let (got, expected) = reader.await.unwrap().unwrap();
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn a_broken_pipe_refuses_further_lines() {
        let (w, r) = tokio::io::duplex(64);
        drop(r);
        let (_stop_tx, stop) = watch::channel(false);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stdin = Stdin::start(Box::new(w), stop, move || {
            let _ = tx.send(());
        });
        stdin.send("first");
        rx.await.expect("on_broken runs");
        assert!(!stdin.send("second"));
    }
}
