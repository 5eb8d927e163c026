//! S3 objects named by notifications on the queue (issue 34). A receiver reads each object as
//! chunks ([`crate::source::s3::Chunks`]) and sends them down the same channel as messages, each
//! with an id of its own ([`crate::source::s3::chunk_id`]: the ledger makes a chunk land once,
//! whatever is redelivered) and the notification's receipt. The notification stays held (kept
//! invisible) while its objects are read and their chunks committed, and is deleted once every
//! chunk of it has committed: a crash half-way loses nothing, it only brings the notification
//! back, and the chunks that committed are skipped. Memory stays flat: a chunk waits for room in
//! the channel's byte budget like any message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::batcher::Buffer;
use super::held::Held;
use super::source::Source;
use crate::source::s3::{self, fetch::is_transport, Chunks, FetchError, ObjectRef, Piece};
use crate::source::{ChunkOf, Envelope, MessageId, ReceiptHandle};
use crate::validate::{RejectCode, Rejection};

/// The size of a chunk: as many logins as one message may hold, and about 1 MiB.
const LIMITS: s3::Limits = s3::Limits {
    max_logins: 1000,
    max_bytes: 1 << 20,
    max_line: 256 << 10,
};

/// Notifications whose chunks are in flight: how many were sent, how many committed, and
/// whether all its objects were read.
#[derive(Clone, Default)]
pub(super) struct Parents(Arc<Mutex<HashMap<ReceiptHandle, Parent>>>);

#[derive(Default)]
struct Parent {
    sent: u64,
    committed: u64,
    read: bool,
}

impl Parents {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<ReceiptHandle, Parent>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// One more chunk of `parent` is about to go down the channel.
    fn sent(&self, parent: &ReceiptHandle) {
        self.with(|map| map.entry(parent.clone()).or_default().sent += 1);
    }

    /// Every object of `parent` was read: `true` if every chunk has committed (delete it now).
    fn read(&self, parent: &ReceiptHandle) -> bool {
        self.with(|map| {
            let p = map.entry(parent.clone()).or_default();
            p.read = true;
            let done = p.committed >= p.sent;
            if done {
                map.remove(parent);
            }
            done
        })
    }

    /// Reading failed for now: the notification comes back and is read again.
    fn abandon(&self, parent: &ReceiptHandle) {
        self.with(|map| map.remove(parent));
    }

    /// A chunk of `parent` committed: `true` if it was the last (delete the notification now).
    pub(super) fn committed(&self, parent: &ReceiptHandle) -> bool {
        self.with(|map| {
            let Some(p) = map.get_mut(parent) else {
                return false;
            };
            p.committed += 1;
            let done = p.read && p.committed >= p.sent;
            if done {
                map.remove(parent);
            }
            done
        })
    }
}

/// What reading a notification's objects needs of its receiver.
pub(super) struct Reader<'r, Q> {
    pub(super) source: &'r Q,
    pub(super) tx: &'r mpsc::Sender<Envelope>,
    pub(super) buffer: &'r Buffer,
    pub(super) held: &'r Held,
    pub(super) parents: &'r Parents,
    /// Shutdown: reading stops, the notification comes back (what committed is skipped then).
    pub(super) stop: &'r CancellationToken,
    /// A notification received more often than this that still fails is quarantined.
    pub(super) max_receives: u32,
}

/// How many times a notification received `receive_count` times has been attempted: one receive
/// fewer, as it may have been handed back unread once (never below 1).
fn attempts(receive_count: u32) -> u32 {
    receive_count.saturating_sub(1).max(1)
}

/// The writer is gone: the receiver stops.
pub(super) struct Closed;

impl<Q: Source> Reader<'_, Q> {
    /// Read `objects` and send their chunks; then delete the notification if they all committed
    /// already (else the last commit does). A transient failure leaves the notification to come
    /// back; an object or line that cannot be read is a chunk quarantined with the reason.
    pub(super) async fn read(
        &self,
        notification: Envelope,
        objects: Vec<ObjectRef>,
    ) -> Result<(), Closed> {
        let parent = notification.receipt_handle.clone();
        for object in &objects {
            let read = match self.read_object(&notification, object).await {
                Ok(read) => read,
                Err(Closed) => {
                    self.parents.abandon(&parent);
                    return Err(Closed);
                }
            };
            if let Err(why) = read {
                tracing::warn!(error = %why, "an S3 object could not be read; its notification comes back");
                self.parents.abandon(&parent);
                self.held.release(&[parent]);
                return Ok(());
            }
        }
        if self.parents.read(&parent) {
            self.delete(parent).await;
        }
        Ok(())
    }

    /// Delete a notification whose chunks all committed (or that named nothing to read).
    pub(super) async fn delete(&self, parent: ReceiptHandle) {
        let receipts = [parent];
        if let Err(e) = self.source.delete(&receipts).await {
            tracing::warn!(error = %e, "could not delete an S3 notification; it comes back and its chunks are skipped");
        }
        self.held.release(&receipts);
    }

    /// One object; `Ok(Err(why))` for a failure that retrying the notification may fix. Each
    /// chunk is held back until the next is read, so that the last one says so (its commit marks
    /// the object read).
    async fn read_object(
        &self,
        notification: &Envelope,
        object: &ObjectRef,
    ) -> Result<Result<(), FetchError>, Closed> {
        let mut ahead = Ahead::default();
        let ending = match self.source.open_object(object).await {
            Ok(opened) => {
                let dated = Envelope {
                    sent_at: opened.last_modified.unwrap_or(notification.sent_at),
                    ..notification.clone()
                };
                match self.chunks(&dated, object, opened, &mut ahead).await? {
                    None => return self.flush(&mut ahead, true).await.map(Ok),
                    Some(failure) => (dated, failure),
                }
            }
            Err(FetchError::Unreadable(why)) => (notification.clone(), Failure::Refuse(0, why)),
            Err(FetchError::Transient(why)) => (notification.clone(), Failure::Retry(0, why)),
        };
        let (dated, failure) = ending;
        match self.refusal_for(&dated, failure) {
            Ok((line, why)) => {
                let refusal = self.refusal(&dated, object, line, why);
                self.push(&mut ahead, refusal).await?;
                self.flush(&mut ahead, true).await.map(Ok)
            }
            // What was read commits; the notification comes back for the rest.
            Err(why) => self.flush(&mut ahead, false).await.map(|()| Err(why)),
        }
    }

    /// Read an opened object's chunks into `ahead` (sending all but the last); how it failed,
    /// `None` if it was read to its end.
    async fn chunks(
        &self,
        dated: &Envelope,
        object: &ObjectRef,
        opened: s3::Opened,
        ahead: &mut Ahead,
    ) -> Result<Option<Failure>, Closed> {
        let mut chunks = match Chunks::open(opened.body, LIMITS).await {
            Ok(chunks) => chunks,
            Err(e) => return Ok(Some(failed(1, &e))),
        };
        loop {
            let chunk = match chunks.next().await {
                Ok(None) if ahead.sent_any || ahead.chunk.is_some() => return Ok(None),
                // 0 bytes: nothing to say (`backfill` skips those too). Anything else that holds
                // no login is said once, so the object is accounted for (`s3_objects`).
                Ok(None) if object.size == Some(0) => return Ok(None),
                Ok(None) => {
                    let why = "the object holds no logins (blank lines, an empty array, or an \
                               empty gzip)";
                    return Ok(Some(Failure::Refuse(1, why.into())));
                }
                Ok(Some(Piece::Logins { first, body, .. })) => {
                    self.chunk(dated, object, first, body, None)
                }
                Ok(Some(Piece::Unreadable { line, why })) => {
                    let why = match why {
                        s3::Unreadable::TooLong(len) => format!(
                            "line {line} is {len} bytes, more than {} a login may be",
                            LIMITS.max_line
                        ),
                        s3::Unreadable::NotUtf8 => format!("line {line} is not UTF-8"),
                    };
                    self.refusal(dated, object, line, why)
                }
                Err(e) => return Ok(Some(failed(chunks.lines() + 1, &e))),
            };
            self.push(ahead, chunk).await?;
        }
    }

    /// How a failure ends: `Ok` to quarantine what is left from a line with a reason, `Err` to
    /// let the notification come back, unless it came back more than --max-receives times
    /// already (then what is left of the object is quarantined with it).
    fn refusal_for(
        &self,
        notification: &Envelope,
        failure: Failure,
    ) -> Result<(u64, String), FetchError> {
        match failure {
            Failure::Refuse(line, why) => Ok((line, why)),
            // Its first receive may have been a hand-back to other consumers (the receiver's
            // `share_notifications`), not an attempt. (Only here: the committer's crash and
            // poison counting of its chunks keeps the real count, which `check`'s redrive rule
            // of 2 × --max-receives + 2 is made for.)
            Failure::Retry(_, why) if attempts(notification.receive_count) <= self.max_receives => {
                Err(FetchError::Transient(why))
            }
            Failure::Retry(line, why) => Ok((
                line,
                format!(
                    "received {} times, more than --max-receives {}, and still failing from \
                     line {line}: {why}",
                    notification.receive_count, self.max_receives
                ),
            )),
        }
    }

    /// A chunk quarantined with `why` (and where in which object).
    fn refusal(
        &self,
        notification: &Envelope,
        object: &ObjectRef,
        line: u64,
        why: String,
    ) -> Envelope {
        // The key may hold anything (an address, a device id): the reason names it by its hash, as
        // the chunk ids do.
        let place = format!(
            "s3://{}/<key {}>",
            crate::safe_text::escape(&object.bucket),
            &s3::chunk_id(object, 0)[3..15]
        );
        let rejection = Rejection::new(RejectCode::UnreadableObject, format!("{place}: {why}"));
        self.chunk(notification, object, line, String::new(), Some(rejection))
    }

    /// The envelope of one chunk: its own id, the notification's receipt.
    fn chunk(
        &self,
        notification: &Envelope,
        object: &ObjectRef,
        first: u64,
        body: String,
        refusal: Option<Rejection>,
    ) -> Envelope {
        Envelope {
            message_id: MessageId(s3::chunk_id(object, first)),
            body,
            undated_copy: false,
            chunk_of: Some(ChunkOf {
                notification: notification.receipt_handle.clone(),
                refusal,
                last: false,
            }),
            ..notification.clone()
        }
    }

    /// Hold `chunk` back, sending the one held before.
    async fn push(&self, ahead: &mut Ahead, chunk: Envelope) -> Result<(), Closed> {
        if let Some(previous) = ahead.chunk.replace(chunk) {
            ahead.sent_any = true;
            self.send(previous).await?;
        }
        Ok(())
    }

    /// Send the chunk held back, marked as the object's last if `last`.
    async fn flush(&self, ahead: &mut Ahead, last: bool) -> Result<(), Closed> {
        let Some(mut chunk) = ahead.chunk.take() else {
            return Ok(());
        };
        if let Some(of) = &mut chunk.chunk_of {
            of.last = last;
        }
        ahead.sent_any = true;
        self.send(chunk).await
    }

    async fn send(&self, chunk: Envelope) -> Result<(), Closed> {
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => return Err(Closed),
            _ = self.buffer.reserve(chunk.body.len()) => {}
            _ = self.tx.closed() => return Err(Closed),
        }
        let parent = (chunk.chunk_of.as_ref()).map(|of| of.notification.clone());
        if let Some(parent) = parent {
            self.parents.sent(&parent);
        }
        self.tx.send(chunk).await.map_err(|_| Closed)
    }
}

/// The chunk read but not yet sent, and whether any was sent before it.
#[derive(Default)]
struct Ahead {
    chunk: Option<Envelope>,
    sent_any: bool,
}

/// How reading an object failed.
enum Failure {
    /// What is left from this line cannot be read: quarantined with the reason.
    Refuse(u64, String),
    /// A failure retrying may fix, from this line.
    Retry(u64, String),
}

/// A read error: receiving the bytes failed (retried), or their content cannot be read from
/// `line` on (corrupt or cut-short gzip: quarantined).
fn failed(line: u64, error: &std::io::Error) -> Failure {
    if is_transport(error) {
        return Failure::Retry(
            line,
            format!("reading the object failed at line {line} ({error})"),
        );
    }
    let why = format!(
        "from line {line} on, the content cannot be read (corrupt, or cut short: {:?})",
        error.kind()
    );
    Failure::Refuse(line, why)
}
