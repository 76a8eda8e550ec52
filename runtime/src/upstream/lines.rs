//! Newline-delimited framing with a hard bound on line length.
//!
//! A server that prints a 2 GiB line must not take berth's memory with it: an
//! over-long line is dropped, and only its first and last bytes are kept so the
//! relay can still tell which request it answered.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// How many bytes of each end of an over-long line are kept.
pub const KEPT_ENDS: usize = 256;

/// One frame read from a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, without its `\n` (and without a trailing `\r`).
    Line(Vec<u8>),
    /// A line longer than the limit; its total length and its two ends.
    TooLong {
        /// Length of the whole line in bytes.
        len: usize,
        /// First bytes of the line.
        head: Vec<u8>,
        /// Last bytes of the line.
        tail: Vec<u8>,
    },
}

/// Reads lines of at most `max` bytes.
pub struct LineReader<R> {
    inner: R,
    max: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Wraps a buffered reader.
    pub fn new(inner: R, max: usize) -> Self {
        Self { inner, max }
    }

    /// The next frame, or `None` at end of stream. A final line without a
    /// newline is still returned.
    pub async fn next(&mut self) -> std::io::Result<Option<Frame>> {
        let mut line = Vec::new();
        let mut len = 0usize;
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let buf = self.inner.fill_buf().await?;
            if buf.is_empty() {
                return Ok(match len {
                    0 => None,
                    _ => Some(self.finish(line, len, tail)),
                });
            }
            let (chunk, found) = match memchr(buf) {
                Some(i) => (&buf[..i], Some(i)),
                None => (buf, None),
            };
            len += chunk.len();
            if len <= self.max {
                line.extend_from_slice(chunk);
            } else {
                let room = self.max.saturating_sub(line.len());
                line.extend_from_slice(&chunk[..room.min(chunk.len())]);
                line.truncate(KEPT_ENDS);
                tail.extend_from_slice(chunk);
                if tail.len() > KEPT_ENDS {
                    tail.drain(..tail.len() - KEPT_ENDS);
                }
            }
            let used = chunk.len() + usize::from(found.is_some());
            self.inner.consume(used);
            if found.is_some() {
                return Ok(Some(self.finish(line, len, tail)));
            }
        }
    }

    fn finish(&self, mut line: Vec<u8>, len: usize, tail: Vec<u8>) -> Frame {
        if len > self.max {
            return Frame::TooLong { len, head: line, tail };
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Frame::Line(line)
    }
}

fn memchr(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn frames(input: &[u8], max: usize, cap: usize) -> Vec<Frame> {
        let mut r = LineReader::new(BufReader::with_capacity(cap, input), max);
        let mut out = Vec::new();
        while let Some(f) = r.next().await.unwrap() {
            out.push(f);
        }
        out
    }

    #[tokio::test]
    async fn splits_lines_across_buffer_boundaries() {
        let got = frames(b"ab\r\ncdef\n\nlast", 10, 3).await;
        let want: Vec<Frame> = [&b"ab"[..], b"cdef", b"", b"last"].iter().map(|l| Frame::Line(l.to_vec())).collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn drops_long_lines_but_keeps_ends_and_continues() {
        let mut input = vec![b'x'; 1000];
        input[0] = b'{';
        input[999] = b'}';
        input.extend_from_slice(b"\nok\n");
        let got = frames(&input, 100, 7).await;
        let Frame::TooLong { len, head, tail } = &got[0] else { panic!("{got:?}") };
        assert_eq!(*len, 1000);
        assert_eq!(head.len(), 100.min(KEPT_ENDS));
        assert_eq!(head[0], b'{');
        assert_eq!(tail.last(), Some(&b'}'));
        assert_eq!(got[1], Frame::Line(b"ok".to_vec()));
    }
}
