//! A server's stderr, into `tracing`, bounded and rate-limited.
//!
//! stderr is the server's diary: useful when it crashes, dangerous when it
//! floods. Lines are cut at [`MAX_LINE`] and at most [`BURST`] lines per second
//! are logged; the rest are counted and reported once the flood ends.

use std::time::Duration;

use tokio::io::{AsyncRead, BufReader};
use tokio::time::Instant;

use super::lines::{Frame, LineReader};

/// Longest stderr line logged; longer ones are cut.
pub const MAX_LINE: usize = 8 << 10;
/// Lines logged per second before the rest are only counted.
pub const BURST: u32 = 200;

/// Reads stderr until it closes.
pub async fn capture(stderr: Box<dyn AsyncRead + Send + Unpin>, connector: String, pid: Option<u32>) {
    let mut reader = LineReader::new(BufReader::new(stderr), MAX_LINE);
    let mut window = Instant::now();
    let (mut logged, mut dropped) = (0u32, 0u64);
    while let Ok(Some(frame)) = reader.next().await {
        if window.elapsed() >= Duration::from_secs(1) {
            if dropped > 0 {
                tracing::warn!(connector = %connector, ?pid, dropped, "server stderr rate-limited: lines dropped");
            }
            window = Instant::now();
            logged = 0;
            dropped = 0;
        }
        if logged >= BURST {
            if dropped == 0 {
                tracing::warn!(connector = %connector, ?pid, "server stderr rate-limited: over {BURST} lines/s, dropping");
            }
            dropped += 1;
            continue;
        }
        logged += 1;
        let text = match &frame {
            Frame::Line(l) => String::from_utf8_lossy(l),
            Frame::TooLong { head, .. } => String::from_utf8_lossy(head),
        };
        tracing::info!(target: "berth::server_stderr", connector = %connector, ?pid, "{text}");
    }
}
