//! A line reader with a bound: a line longer than the limit is cut (its head kept, the rest
//! counted and dropped) instead of growing a buffer without end, and reading never stops because
//! of bad bytes. What a task prints can never make the server's memory grow past the limit.

use tokio::io::{AsyncRead, AsyncReadExt};

/// One line as read: its bytes (without the newline, at most the limit) and how many were cut.
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    pub bytes: Vec<u8>,
    pub cut: u64,
}

/// The least room made for a read: what one read asks the pipe for at most, unless the buffer
/// grew larger for a long line or a burst.
const READ_SIZE: usize = 8 * 1024;

/// Reads lines of at most `max_line` bytes from `reader`.
pub struct BoundedLines<R> {
    reader: R,
    max_line: usize,
    buffer: Vec<u8>,
    /// Start of the unread part of `buffer`.
    start: usize,
    /// How far past `start` the buffer is known to hold no newline.
    scanned: usize,
    /// Bytes of the current line dropped because it was too long.
    cut: u64,
    eof: bool,
}

impl<R: AsyncRead + Unpin> BoundedLines<R> {
    pub fn new(reader: R, max_line: usize) -> Self {
        BoundedLines {
            reader,
            max_line,
            // Allocated on the first read, and grown only as the output needs: a quiet stream (a
            // task's stderr, mostly) costs next to nothing, for each of the attempts running.
            buffer: Vec::new(),
            start: 0,
            scanned: 0,
            cut: 0,
            eof: false,
        }
    }

    /// The next line, or `None` at the end of the stream. Cancel-safe: no bytes are lost when the
    /// future is dropped between reads.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            if let Some(line) = self.buffered_line() {
                return Ok(Some(line));
            }
            if self.scanned > self.max_line {
                // Too long: keep the head, drop the rest of the line as it arrives.
                self.cut += (self.scanned - self.max_line) as u64;
                self.buffer.truncate(self.start + self.max_line);
                self.scanned = self.max_line;
            }
            if self.eof {
                if self.buffer.len() > self.start {
                    let end = self.buffer.len();
                    let line = self.take(end);
                    self.start = end;
                    self.scanned = 0;
                    return Ok(Some(line));
                }
                return Ok(None);
            }
            // Compact before reading more.
            if self.start > 0 {
                self.buffer.drain(..self.start);
                self.start = 0;
            }
            self.buffer.reserve(READ_SIZE);
            if self.reader.read_buf(&mut self.buffer).await? == 0 {
                self.eof = true;
            }
        }
    }

    /// The next line if it is already read in whole (no waiting for more input): a caller that
    /// took a line can take those that came with it at once.
    pub fn buffered_line(&mut self) -> Option<Line> {
        // Only bytes not looked at before are searched: a long line costs linear time.
        let from = self.start + self.scanned;
        match memchr::memchr(b'\n', &self.buffer[from..]) {
            Some(pos) => {
                let end = from + pos;
                let line = self.take(end);
                self.start = end + 1;
                self.scanned = 0;
                Some(line)
            }
            None => {
                self.scanned = self.buffer.len() - self.start;
                None
            }
        }
    }

    fn take(&mut self, end: usize) -> Line {
        let mut bytes = self.buffer[self.start..end].to_vec();
        let mut cut = std::mem::take(&mut self.cut);
        if bytes.len() > self.max_line {
            cut += (bytes.len() - self.max_line) as u64;
            bytes.truncate(self.max_line);
        }
        Line { bytes, cut }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(input: &[u8], max: usize) -> Vec<Line> {
        let mut lines = BoundedLines::new(input, max);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().await.expect("read") {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_a_last_unterminated_one() {
        let lines = read_all(b"a\nbb\n\nccc", 10).await;
        let texts: Vec<&[u8]> = lines.iter().map(|l| l.bytes.as_slice()).collect();
        assert_eq!(texts, vec![&b"a"[..], b"bb", b"", b"ccc"]);
    }

    #[tokio::test]
    async fn cuts_long_lines_and_goes_on() {
        let mut input = vec![b'x'; 300_000];
        input.extend_from_slice(b"\nnext\n\xff\xfe\n");
        let lines = read_all(&input, 1000).await;
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].bytes.len(), 1000);
        assert_eq!(lines[0].cut, 299_000);
        assert_eq!(lines[1], Line { bytes: b"next".to_vec(), cut: 0 });
        assert_eq!(lines[2].bytes, b"\xff\xfe".to_vec(), "invalid UTF-8 is passed on, not an error");
    }
}
