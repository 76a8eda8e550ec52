//! stdout shared between rmcp and the `garbage` tool, so raw lines land
//! between whole JSON-RPC messages rather than inside one.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;

/// Raw lines to print between messages.
pub type Garbage = mpsc::UnboundedSender<Vec<u8>>;

/// Returns the writer rmcp writes messages to and a sender for raw lines.
pub fn spawn_stdout() -> (DuplexStream, Garbage) {
    let (writer, reader) = tokio::io::duplex(1 << 20);
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        let mut lines = BufReader::new(reader);
        let mut line = Vec::new();
        loop {
            tokio::select! {
                n = lines.read_until(b'\n', &mut line) => {
                    match n {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if out.write_all(&line).await.is_err() { break; }
                            line.clear();
                        }
                    }
                }
                Some(raw) = rx.recv() => {
                    if out.write_all(&raw).await.is_err() { break; }
                }
            }
            if out.flush().await.is_err() {
                break;
            }
        }
    });
    (writer, tx)
}
