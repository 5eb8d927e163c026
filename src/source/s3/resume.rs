//! An object's bytes that survive a dropped connection: when the body stops with an error, the
//! same content is asked for again from the first byte not yet received (`Range`, with the first
//! reply's ETag as `If-Match` and its version id), and reading goes on as if nothing happened: the
//! gzip decoder and the chunking above never see the break, so a long object is read whole even
//! where a server cuts long downloads (LocalStack resets one after about 84 s).
//!
//! A resumed reply must say it starts at that byte (`Content-Range`); a server that ignores the
//! range (a full 200) or a content written again since (412) ends the read with a transport
//! error, as before: the notification comes back and what committed is skipped.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};

use super::fetch::{classify, FetchError, TransportError};
use super::ObjectRef;

/// Resumes in a row that received nothing before the read gives up.
const MAX_RESUMES: u32 = 5;

type Body = Box<dyn AsyncRead + Unpin + Send>;
type Reopening = Pin<Box<dyn Future<Output = Result<Body, Refused>> + Send>>;

/// Why a resume did not continue the body.
enum Refused {
    /// Worth another try (no connection, a server error).
    Again(String),
    /// Never will: the server ignores ranges, or the content is gone or written again.
    ForGood(String),
}

/// What a resume asks for: the content the first reply had.
#[derive(Clone)]
pub(super) struct Pinned {
    pub(super) client: aws_sdk_s3::Client,
    pub(super) object: ObjectRef,
    /// The first reply's ETag (quoted, as S3 sends it), else the notification's.
    pub(super) etag: Option<String>,
    /// The first reply's version id, else the notification's.
    pub(super) version_id: Option<String>,
    /// The first reply's length: a break at or past it is the end.
    pub(super) length: Option<u64>,
}

/// The body of a GET, reopened from where it broke.
pub(super) struct Resuming {
    pinned: Pinned,
    /// Bytes received so far.
    offset: u64,
    /// Resumes since bytes last arrived.
    failures: u32,
    state: State,
}

enum State {
    Reading(Body),
    Reopening(Reopening),
    /// Given up: this error, again on every read.
    Failed(io::ErrorKind),
}

impl Resuming {
    pub(super) fn new(pinned: Pinned, body: Body) -> Self {
        Resuming {
            pinned,
            offset: 0,
            failures: 0,
            state: State::Reading(body),
        }
    }

    /// After a break of `kind`: reopen, or give up.
    fn broke(&mut self, kind: io::ErrorKind, why: &str, for_good: bool) {
        let resumable = self.pinned.etag.is_some() || self.pinned.version_id.is_some();
        if for_good || self.failures >= MAX_RESUMES || !resumable {
            tracing::warn!(received = self.offset, error = %why, "reading an S3 object failed; its notification comes back");
            self.state = State::Failed(kind);
            return;
        }
        self.failures += 1;
        tracing::info!(received = self.offset, attempt = self.failures, error = %why, "an S3 download broke off; resuming from the byte it reached");
        let (pinned, offset, attempt) = (self.pinned.clone(), self.offset, self.failures);
        self.state = State::Reopening(Box::pin(reopen(pinned, offset, attempt)));
    }
}

impl AsyncRead for Resuming {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Reading(body) => {
                    let before = buf.filled().len();
                    match Pin::new(body).poll_read(cx, buf) {
                        Poll::Ready(Ok(())) => {
                            let got = (buf.filled().len() - before) as u64;
                            // A clean end short of the first reply's length is a break too.
                            let short = this.pinned.length.is_some_and(|len| this.offset < len);
                            if got == 0 && buf.remaining() > 0 && short {
                                this.broke(io::ErrorKind::UnexpectedEof, "ended early", false);
                                continue;
                            }
                            this.offset += got;
                            if got > 0 {
                                this.failures = 0;
                            }
                            return Poll::Ready(Ok(()));
                        }
                        Poll::Ready(Err(e)) => {
                            // Whatever a failed read put in `buf` is not counted: drop it.
                            buf.set_filled(before);
                            if this.pinned.length.is_some_and(|len| this.offset >= len) {
                                return Poll::Ready(Ok(())); // broke after the last byte
                            }
                            this.broke(e.kind(), &e.kind().to_string(), false);
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                }
                State::Reopening(reopening) => match reopening.as_mut().poll(cx) {
                    Poll::Ready(Ok(body)) => this.state = State::Reading(body),
                    Poll::Ready(Err(Refused::Again(why))) => {
                        this.broke(io::ErrorKind::ConnectionAborted, &why, false)
                    }
                    Poll::Ready(Err(Refused::ForGood(why))) => {
                        this.broke(io::ErrorKind::ConnectionAborted, &why, true)
                    }
                    Poll::Pending => return Poll::Pending,
                },
                State::Failed(kind) => {
                    return Poll::Ready(Err(io::Error::other(TransportError(*kind))));
                }
            }
        }
    }
}

/// The same content again from byte `offset`, after a short pause that grows with `attempt`.
async fn reopen(pinned: Pinned, offset: u64, attempt: u32) -> Result<Body, Refused> {
    tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
    let mut get = (pinned.client.get_object())
        .bucket(&pinned.object.bucket)
        .key(&pinned.object.key)
        .range(format!("bytes={offset}-"));
    if let Some(version) = &pinned.version_id {
        get = get.version_id(version);
    }
    if let Some(etag) = &pinned.etag {
        get = get.if_match(etag);
    }
    let output = get.send().await.map_err(|e| match classify(e) {
        FetchError::Transient(why) => Refused::Again(why),
        FetchError::Unreadable(why) => Refused::ForGood(why),
    })?;
    // Only a reply that starts where the last one broke continues it.
    let starts = format!("bytes {offset}-");
    // ... and ends at the same content's end, with the same ETag.
    let ends = pinned
        .length
        .map(|len| format!("-{}/{len}", len.saturating_sub(1)));
    let same = (output.e_tag.as_deref())
        .zip(pinned.etag.as_deref())
        .map_or(true, |(a, b)| a == b);
    let range = output.content_range().unwrap_or("");
    if !range.starts_with(&starts) || ends.is_some_and(|e| !range.ends_with(&e)) || !same {
        return Err(Refused::ForGood(
            "the server did not resume from the byte reached (no Content-Range)".into(),
        ));
    }
    Ok(Box::new(output.body.into_async_read()))
}
