//! An S3 object read as a stream of chunks: NDJSON (one login per line, or JSON objects back to
//! back as Firehose writes them: [`records`]) or one JSON array of logins, plain or gzip (known by its first bytes, never by its name; every gzip member read).
//! Each chunk is a body the login path already knows, NDJSON of at most `max_logins` logins and
//! about `max_bytes`, so memory stays flat whatever the object's size, and the chunking is the
//! same on every read of the same content: a chunk's identity is its object and its first line.
//!
//! A line that cannot be one of several logins (not one JSON object: cut short, a number, a
//! pretty-printed object's first line) starts no chunk of several: it is a chunk alone, so what
//! refuses it refuses only it. A line longer than `max_line` or not UTF-8 is not kept at all:
//! it is reported as [`Piece::Unreadable`] with its line number, for quarantine.

use std::io;

use async_compression::tokio::bufread::GzipDecoder;
use serde::de::IgnoredAny;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

/// How big a chunk may grow.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Logins per chunk (no more than the run's `--max-logins-per-message`).
    pub max_logins: usize,
    /// Bytes per chunk, about (a chunk closes once past it).
    pub max_bytes: usize,
    /// Longest line (or array element) kept; a longer one is [`Unreadable::TooLong`].
    pub max_line: usize,
}

/// What the stream yields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Logins as an NDJSON body: lines `first..first + count` of the object. A blank line ends a
    /// chunk, so its logins' lines are consecutive and a refused one is named by its own line.
    Logins {
        /// The first login's line (1-based; in an array, its element's position).
        first: u64,
        /// How many logins, on consecutive lines.
        count: u32,
        /// NDJSON, one login per line.
        body: String,
    },
    /// A line that is not kept, and why.
    Unreadable {
        /// Its line (1-based; in an array, its element's position).
        line: u64,
        /// Why.
        why: Unreadable,
    },
}

/// Why a line was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Longer than [`Limits::max_line`] (its length in bytes).
    TooLong(u64),
    /// Not UTF-8.
    NotUtf8,
}

type Reader = Box<dyn AsyncBufRead + Unpin + Send>;

/// The object's content as chunks.
pub struct Chunks {
    reader: Reader,
    limits: Limits,
    /// Lines (or elements) read so far.
    line: u64,
    in_array: bool,
    /// A line read but not yet placed (it starts the next chunk).
    pending: Option<(u64, String)>,
    /// What the next call returns first.
    queued: Option<Piece>,
    /// A read error met while a chunk was filling: returned after that chunk.
    failed: Option<io::Error>,
    done: bool,
}

impl Chunks {
    /// Start reading `raw`: gunzipped if it starts with gzip's magic bytes.
    pub async fn open(
        raw: impl AsyncRead + Unpin + Send + 'static,
        limits: Limits,
    ) -> io::Result<Self> {
        let mut raw = BufReader::with_capacity(64 * 1024, raw);
        let mut head = [0u8; 2];
        let mut got = 0;
        while got < head.len() {
            let n = raw.read(&mut head[got..]).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let rejoined = io::Cursor::new(head[..got].to_vec()).chain(raw);
        let mut reader: Reader = if head[..got] == [0x1f, 0x8b] {
            let mut gz = GzipDecoder::new(BufReader::new(rejoined));
            gz.multiple_members(true);
            Box::new(BufReader::with_capacity(64 * 1024, gz))
        } else {
            Box::new(BufReader::with_capacity(64 * 1024, rejoined))
        };
        let in_array = starts_array(&mut reader).await?;
        Ok(Chunks {
            reader,
            limits,
            line: 0,
            in_array,
            pending: None,
            queued: None,
            failed: None,
            done: false,
        })
    }

    /// Lines (or array elements) read so far.
    pub fn lines(&self) -> u64 {
        self.line
    }

    /// The next piece, `None` at the end of the object. A read error (the connection dropped, a
    /// corrupt gzip stream) is returned as is: the caller decides between retrying and
    /// quarantining the rest.
    pub async fn next(&mut self) -> io::Result<Option<Piece>> {
        if let Some(piece) = self.queued.take() {
            return Ok(Some(piece));
        }
        if let Some(error) = self.failed.take() {
            self.done = true;
            return Err(error);
        }
        let mut body = String::new();
        let (mut first, mut count) = (0, 0u32);
        loop {
            let unit = match self.pending.take() {
                Some(unit) => Some(Ok(unit)),
                None => match self.next_unit().await {
                    Ok(unit) => unit,
                    // Content that cannot be read (corrupt gzip): the logins read so far go
                    // first, and the error ends the object after them. A connection that failed
                    // is another matter: the chunk it cut short is dropped, so that when the
                    // object is read again the same id holds the same lines (else the rest of
                    // the chunk would be skipped as a duplicate, and lost).
                    Err(error) if count > 0 && !super::fetch::is_transport(&error) => {
                        self.failed = Some(error);
                        break;
                    }
                    Err(error) => return Err(error),
                },
            };
            let (line, text) = match unit {
                None => break,
                Some(Ok((_, text))) if text.is_empty() && count == 0 => continue,
                Some(Ok((_, text))) if text.is_empty() => break,
                Some(Err(unreadable)) if count == 0 => return Ok(Some(unreadable)),
                Some(Err(unreadable)) => {
                    self.queued = Some(unreadable);
                    break;
                }
                Some(Ok(unit)) => unit,
            };
            if count == 0 {
                if !is_object(&text) {
                    return Ok(Some(Piece::Logins {
                        first: line,
                        count: 1,
                        body: text,
                    }));
                }
                first = line;
            } else if count as usize >= self.limits.max_logins
                || body.len() + 1 + text.len() > self.limits.max_bytes
            {
                self.pending = Some((line, text));
                break;
            }
            if count > 0 {
                body.push('\n');
            }
            body.push_str(&text);
            count += 1;
        }
        Ok((count > 0).then_some(Piece::Logins { first, count, body }))
    }

    /// The next non-blank line or array element, numbered.
    async fn next_unit(&mut self) -> io::Result<Option<Result<(u64, String), Piece>>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let array = self.in_array;
            let read = match array {
                true => self.read_element().await?,
                false => self.read_line().await?,
            };
            let Some(bytes) = read else {
                self.done = true;
                return Ok(None);
            };
            self.line += 1;
            let line = self.line;
            let bytes = match bytes {
                Err(len) => return Ok(Some(Err(unreadable(line, Unreadable::TooLong(len))))),
                Ok(bytes) => bytes,
            };
            let Ok(text) = String::from_utf8(bytes) else {
                return Ok(Some(Err(unreadable(line, Unreadable::NotUtf8))));
            };
            // In an array, an element spread over lines is one line of the chunk (outside
            // strings, where JSON allows no raw line break, they are only whitespace).
            let text = match array {
                true => text.replace(['\n', '\r'], " "),
                false => text,
            };
            let text = text.trim();
            if text.is_empty() && array {
                // Nothing between `[`, `,` and `]` is no element.
                self.line -= 1;
                continue;
            }
            // A blank line (empty text) is still a line of the object: it ends a chunk.
            return Ok(Some(Ok((line, text.to_string()))));
        }
    }

    /// One line without its end, or one of the objects written back to back on a line
    /// ([`records`]), at most `max_line` bytes kept (`Err(length)` past it).
    async fn read_line(&mut self) -> io::Result<Option<Result<Vec<u8>, u64>>> {
        let mut kept = Vec::new();
        let mut len = 0u64;
        let mut record = records::Record::default();
        loop {
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                return Ok((len > 0).then(|| finish(kept, len, self.limits.max_line)));
            }
            let mut end = None;
            for (i, &b) in buf.iter().enumerate() {
                match record.step(b) {
                    records::Step::Take => {}
                    records::Step::EndOfLine => {
                        end = Some((i, 1));
                        break;
                    }
                    records::Step::EndBefore => {
                        end = Some((i, 0));
                        break;
                    }
                }
            }
            let take = end.map_or(buf.len(), |(i, _)| i);
            if kept.len() < self.limits.max_line {
                let room = (self.limits.max_line - kept.len()).min(take);
                kept.extend_from_slice(&buf[..room]);
            }
            len += take as u64;
            self.reader.consume(take + end.map_or(0, |(_, skip)| skip));
            if end.is_some() {
                return Ok(Some(finish(kept, len, self.limits.max_line)));
            }
        }
    }

    /// One element of the top-level array, at most `max_line` bytes kept; after the closing `]`
    /// the rest of the object is read as lines (anything there is reported, never dropped).
    async fn read_element(&mut self) -> io::Result<Option<Result<Vec<u8>, u64>>> {
        let (mut kept, mut len) = (Vec::new(), 0u64);
        let (mut depth, mut in_string, mut escaped) = (0u64, false, false);
        loop {
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                // Cut short: what was read is an element, which validation refuses.
                self.in_array = false;
                return Ok((len > 0).then(|| finish(kept, len, self.limits.max_line)));
            }
            let mut end = None;
            for (i, &b) in buf.iter().enumerate() {
                if in_string {
                    match (escaped, b) {
                        (true, _) => escaped = false,
                        (false, b'\\') => escaped = true,
                        (false, b'"') => in_string = false,
                        _ => {}
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth = depth.saturating_add(1),
                    b'}' | b']' if depth > 0 => depth -= 1,
                    b',' if depth == 0 => {
                        end = Some((i, false));
                        break;
                    }
                    b']' => {
                        end = Some((i, true));
                        break;
                    }
                    _ => {}
                }
            }
            let take = end.map_or(buf.len(), |(i, _)| i);
            if kept.len() < self.limits.max_line {
                let room = (self.limits.max_line - kept.len()).min(take);
                kept.extend_from_slice(&buf[..room]);
            }
            len += take as u64;
            let consumed = take + usize::from(end.is_some());
            self.reader.consume(consumed);
            if let Some((_, closed)) = end {
                // After the closing `]` the rest is read as lines: anything there is reported.
                self.in_array &= !closed;
                return Ok(Some(finish(kept, len, self.limits.max_line)));
            }
        }
    }
}

fn finish(kept: Vec<u8>, len: u64, max: usize) -> Result<Vec<u8>, u64> {
    match len as usize > max {
        true => Err(len),
        false => Ok(kept),
    }
}

fn unreadable(line: u64, why: Unreadable) -> Piece {
    Piece::Unreadable { line, why }
}

/// Whether a line can be one of several logins in a chunk: one complete JSON object.
fn is_object(text: &str) -> bool {
    text.starts_with('{') && serde_json::from_str::<IgnoredAny>(text).is_ok()
}

/// Whether the content is one JSON array: its `[` (after any whitespace, and a UTF-8 byte order
/// mark) is consumed.
async fn starts_array(reader: &mut Reader) -> io::Result<bool> {
    let buf = reader.fill_buf().await?;
    if buf.starts_with(&[0xef, 0xbb, 0xbf]) {
        reader.consume(3);
    }
    loop {
        let buf = reader.fill_buf().await?;
        let Some(&b) = buf.first() else {
            return Ok(false);
        };
        if b.is_ascii_whitespace() {
            reader.consume(1);
            continue;
        }
        if b == b'[' {
            reader.consume(1);
            return Ok(true);
        }
        return Ok(false);
    }
}

mod records;

#[cfg(test)]
mod tests;
