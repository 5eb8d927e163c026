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

    /// One object; `Ok(Err(why))` for a failure that retrying the notification may fix.
    async fn read_object(
        &self,
        notification: &Envelope,
        object: &ObjectRef,
    ) -> Result<Result<(), FetchError>, Closed> {
        let opened = match self.source.open_object(object).await {
            Ok(opened) => opened,
            Err(FetchError::Unreadable(why)) => {
                return self.refuse(notification, object, 0, why).await.map(Ok);
            }
            Err(FetchError::Transient(why)) => {
                return self.retry_or_refuse(notification, object, 0, why).await;
            }
        };
        let dated = Envelope {
            sent_at: opened.last_modified.unwrap_or(notification.sent_at),
            ..notification.clone()
        };
        let mut chunks = match Chunks::open(opened.body, LIMITS).await {
            Ok(chunks) => chunks,
            Err(e) => return self.failed(&dated, object, 1, &e).await,
        };
        loop {
            match chunks.next().await {
                Ok(None) => return Ok(Ok(())),
                Ok(Some(Piece::Logins { first, body, .. })) => {
                    self.send(&dated, object, first, body, None).await?;
                }
                Ok(Some(Piece::Unreadable { line, why })) => {
                    let why = match why {
                        s3::Unreadable::TooLong(len) => format!(
                            "line {line} is {len} bytes, more than {} a login may be",
                            LIMITS.max_line
                        ),
                        s3::Unreadable::NotUtf8 => format!("line {line} is not UTF-8"),
                    };
                    self.refuse(&dated, object, line, why).await?;
                }
                Err(e) => return self.failed(&dated, object, chunks.lines() + 1, &e).await,
            }
        }
    }

    /// A read error: receiving the bytes failed (retried), or their content cannot be read from
    /// `line` on (corrupt or cut-short gzip: quarantined).
    async fn failed(
        &self,
        notification: &Envelope,
        object: &ObjectRef,
        line: u64,
        error: &std::io::Error,
    ) -> Result<Result<(), FetchError>, Closed> {
        if is_transport(error) {
            let why = format!("reading the object failed at line {line} ({error})");
            return self.retry_or_refuse(notification, object, line, why).await;
        }
        let why = format!(
            "from line {line} on, the content cannot be read (corrupt, or cut short: {:?})",
            error.kind()
        );
        self.refuse(notification, object, line, why).await.map(Ok)
    }

    /// A failure retrying may fix: the notification comes back, unless it came back more than
    /// --max-receives times already (then what is left of the object is quarantined with it).
    async fn retry_or_refuse(
        &self,
        notification: &Envelope,
        object: &ObjectRef,
        line: u64,
        why: String,
    ) -> Result<Result<(), FetchError>, Closed> {
        if notification.receive_count <= self.max_receives {
            return Ok(Err(FetchError::Transient(why)));
        }
        let why = format!(
            "received {} times, more than --max-receives {}, and still failing from line {line}: \
             {why}",
            notification.receive_count, self.max_receives
        );
        self.refuse(notification, object, line, why).await.map(Ok)
    }

    /// A chunk quarantined with `why` (and where in which object).
    async fn refuse(
        &self,
        notification: &Envelope,
        object: &ObjectRef,
        line: u64,
        why: String,
    ) -> Result<(), Closed> {
        // The key may hold anything (an address, a device id): the reason names it by its hash, as
        // the chunk ids do.
        let place = format!(
            "s3://{}/<key {}>",
            crate::safe_text::escape(&object.bucket),
            &s3::chunk_id(object, 0)[3..15]
        );
        let rejection = Rejection::new(RejectCode::UnreadableObject, format!("{place}: {why}"));
        self.send(notification, object, line, String::new(), Some(rejection))
            .await
    }

    async fn send(
        &self,
        notification: &Envelope,
        object: &ObjectRef,
        first: u64,
        body: String,
        refusal: Option<Rejection>,
    ) -> Result<(), Closed> {
        let chunk = Envelope {
            message_id: MessageId(s3::chunk_id(object, first)),
            body,
            undated_copy: false,
            chunk_of: Some(ChunkOf {
                notification: notification.receipt_handle.clone(),
                refusal,
            }),
            ..notification.clone()
        };
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => return Err(Closed),
            _ = self.buffer.reserve(chunk.body.len()) => {}
            _ = self.tx.closed() => return Err(Closed),
        }
        self.parents.sent(&notification.receipt_handle);
        self.tx.send(chunk).await.map_err(|_| Closed)
    }
}
