//! Standard input and output as tokio streams.
//!
//! On WASI, tokio cannot read stdin, and a blocking read would stall the only
//! thread while rmcp still has a reply to write (a p1 guest reading
//! `std::io::stdin` did exactly that). So stdin is polled without blocking
//! through `wasi:io/streams`; when nothing is there, the reader yields a few
//! times so every other task gets its turn, and only then blocks the thread on
//! the stream's pollable, which wakes when the host has input or closes it.
//! Stdout is written synchronously: the host drains it.

#[cfg(target_os = "wasi")]
pub use wasi_stdio::{stdin, stdout};

#[cfg(not(target_os = "wasi"))]
pub fn stdin() -> tokio::io::Stdin {
    tokio::io::stdin()
}

#[cfg(not(target_os = "wasi"))]
pub fn stdout() -> tokio::io::Stdout {
    tokio::io::stdout()
}

#[cfg(target_os = "wasi")]
mod wasi_stdio {
    use std::io::{self, Write};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use wasi::io::streams::{InputStream, StreamError};

    /// Empty polls before the reader blocks: enough for every task woken by
    /// the last message to run (tokio's current-thread queue is FIFO).
    const YIELDS_BEFORE_BLOCKING: u32 = 4;

    /// The guest's stdin.
    pub fn stdin() -> Stdin {
        Stdin { stream: wasi::cli::stdin::get_stdin(), idle: 0 }
    }

    /// The guest's stdout.
    pub fn stdout() -> Stdout {
        Stdout
    }

    pub struct Stdin {
        stream: InputStream,
        idle: u32,
    }

    impl AsyncRead for Stdin {
        fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            let want = u64::try_from(buf.remaining()).unwrap_or(u64::MAX);
            match self.stream.read(want) {
                Ok(bytes) if !bytes.is_empty() => {
                    self.idle = 0;
                    buf.put_slice(&bytes);
                    Poll::Ready(Ok(()))
                }
                Ok(_) => {
                    if self.idle < YIELDS_BEFORE_BLOCKING {
                        self.idle += 1;
                    } else {
                        // Nothing else can run: sleep until the host has input.
                        self.stream.subscribe().block();
                        self.idle = 0;
                    }
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Err(StreamError::Closed) => Poll::Ready(Ok(())),
                Err(StreamError::LastOperationFailed(e)) => Poll::Ready(Err(io::Error::other(e.to_debug_string()))),
            }
        }
    }

    pub struct Stdout;

    impl AsyncWrite for Stdout {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(io::stdout().write(buf))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(io::stdout().flush())
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.poll_flush(cx)
        }
    }
}
