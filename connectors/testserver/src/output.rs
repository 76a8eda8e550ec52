//! Process output. stdout has one owner, shared by rmcp and the `garbage`
//! tool; stderr gets a writer that cannot panic.
//!
//! rmcp writes each message through tokio's stdout, which may split a large
//! message across several `write` calls; a raw line written on another handle
//! (even under `std::io::stdout().lock()`) could then land inside a message.
//! Instead rmcp writes into an in-memory pipe and a single pump task copies
//! whole lines to the real stdout, putting the raw lines between them.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Raw bytes to print between whole messages.
pub type Garbage = mpsc::UnboundedSender<Vec<u8>>;

/// The pipe rmcp writes to and the task that drains it.
pub struct Stdout {
    /// Give this to rmcp as the transport's write half.
    pub writer: DuplexStream,
    /// Give this to whatever prints raw lines.
    pub garbage: Garbage,
    /// Ends once `writer` is dropped and everything written has reached stdout.
    pub pump: JoinHandle<()>,
}

/// Set by the `freeze` tool: the pump stops writing, for good.
static FROZEN: AtomicBool = AtomicBool::new(false);

/// Makes the server wedged: alive, reading its input, and answering nothing.
pub fn freeze() {
    FROZEN.store(true, Ordering::Release);
}

/// Set while the `hog` tool computes: the pump holds every message, as a
/// single-threaded server busy with one call would answer nothing else.
static HELD: AtomicBool = AtomicBool::new(false);

/// Holds (or releases) every message the server writes.
pub fn hold(on: bool) {
    HELD.store(on, Ordering::Release);
}

/// Starts the pump on the current runtime.
pub fn spawn() -> Stdout {
    let (writer, reader) = tokio::io::duplex(1 << 20);
    let (garbage, raw_lines) = mpsc::unbounded_channel();
    let pump = tokio::spawn(pump(reader, raw_lines));
    Stdout { writer, garbage, pump }
}

async fn pump(reader: DuplexStream, mut raw_lines: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut out = tokio::io::stdout();
    let mut messages = BufReader::new(reader);
    // Survives across loop turns: `read_until` appends what it read before a
    // raw line interrupted it, so a message is never cut.
    let mut line = Vec::new();
    loop {
        if FROZEN.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
        while HELD.load(Ordering::Acquire) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tokio::select! {
            // Raw lines first: a tool queues them before rmcp writes its reply,
            // so they always precede that reply on stdout.
            biased;
            Some(raw) = raw_lines.recv() => {
                if out.write_all(&raw).await.is_err() {
                    break;
                }
            }
            n = messages.read_until(b'\n', &mut line) => {
                match n {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let written = out.write_all(&line).await;
                        line.clear();
                        if written.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        if out.flush().await.is_err() {
            break;
        }
    }
    let _ = out.flush().await;
}

/// Writes lines to stderr, ignoring failure: `eprintln!` would panic if the
/// reader of stderr went away, and losing a diagnostic must not kill a call.
pub fn stderr_lines<I, S>(lines: I)
where
    I: IntoIterator<Item = S>,
    S: std::fmt::Display,
{
    let mut err = io::stderr().lock();
    for line in lines {
        if writeln!(err, "{line}").is_err() {
            return;
        }
    }
}
