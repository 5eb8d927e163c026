//! A fake S3 endpoint serving one object for any GET, whose downloads break off where a test says:
//! what real S3 (or LocalStack, which resets a download after about 84 s) does to a long read.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the fake answers.
#[derive(Clone, Copy)]
pub(crate) struct Breaks {
    /// The first this many replies announce the whole object and break off early.
    pub(crate) cut: usize,
    /// A broken reply sends this many bytes (of what it was asked for) before it breaks off.
    pub(crate) partial: usize,
    /// Whether a `Range: bytes=N-` request gets a 206 from byte N (else the whole object, 200).
    pub(crate) ranges: bool,
    /// What the 206 replies that do not break off do wrong, if anything.
    pub(crate) lie: Lie,
}

/// A resumed (206) reply that is wrong in a way the reader must notice.
#[derive(Clone, Copy, Default, PartialEq)]
pub(crate) enum Lie {
    #[default]
    None,
    /// The first such reply claims the rest of the object (`Content-Range`) but sends and
    /// announces (`Content-Length`) only half of it, and ends cleanly.
    EndsShort,
    /// They serve other content (the object upper-cased) under another ETag: the object was
    /// written again between the first GET and the resume.
    Changed,
}

/// A running fake: its endpoint, and the first byte each GET asked for (0 without a range).
pub(crate) struct FakeS3 {
    pub(crate) endpoint: String,
    asked: Arc<Mutex<Vec<u64>>>,
}

impl FakeS3 {
    /// Serve `body` (ETag `"abc"`) on a port of its own.
    pub(crate) async fn start(body: Vec<u8>, breaks: Breaks) -> FakeS3 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (body, log) = (body.clone(), log.clone());
                tokio::spawn(async move {
                    let Some(from) = request_range(&mut stream).await else {
                        return;
                    };
                    let from = if breaks.ranges { from } else { 0 };
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(from);
                        log.len() - 1
                    };
                    let changed = body.to_ascii_uppercase();
                    let (content, etag) = match breaks.lie == Lie::Changed && from > 0 {
                        true => (&changed, "xyz"),
                        false => (&body, "abc"),
                    };
                    let mut rest = &content[(from as usize).min(body.len())..];
                    let status = match from {
                        0 => "200 OK".to_string(),
                        _ => format!(
                            "206 Partial Content\r\nContent-Range: bytes {from}-{}/{}",
                            body.len() - 1,
                            body.len()
                        ),
                    };
                    let broken = n < breaks.cut;
                    if breaks.lie == Lie::EndsShort && from > 0 && n == breaks.cut {
                        rest = &rest[..rest.len() / 2];
                    }
                    let sent = if broken {
                        breaks.partial.min(rest.len())
                    } else {
                        rest.len()
                    };
                    // Sent whole yet broken: it announced more than there is.
                    let announced = rest.len() + if broken && sent == rest.len() { 100 } else { 0 };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {announced}\r\n\
                         Content-Type: application/octet-stream\r\n\
                         Last-Modified: Sat, 05 Dec 2026 00:00:00 GMT\r\nETag: \"{etag}\"\r\n\
                         Connection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&rest[..sent]).await;
                    let _ = stream.flush().await;
                    if broken {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        FakeS3 { endpoint, asked }
    }

    /// The first byte each GET so far asked for, in order.
    pub(crate) fn asked(&self) -> Vec<u64> {
        self.asked.lock().unwrap().clone()
    }
}

/// Read a request's head; the N of its `Range: bytes=N-` (0 without one), `None` if it broke.
async fn request_range(stream: &mut tokio::net::TcpStream) -> Option<u64> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
    let from = (head.lines())
        .find_map(|line| line.strip_prefix("range: bytes="))
        .and_then(|range| range.trim().strip_suffix('-'))
        .and_then(|n| n.parse().ok());
    Some(from.unwrap_or(0))
}
