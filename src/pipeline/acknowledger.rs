//! After the commit, delete, and stop keeping the batch invisible (the [heartbeat](super::held)
//! keeps every held message invisible until then, so SQS doesn't hand it to another consumer).

use tokio_util::sync::CancellationToken;

use super::held::Held;
use super::objects::Parents;
use super::source::Source;
use crate::retry::{Budget, Retry};
use crate::source::{Envelope, ReceiptHandle};
use crate::telemetry::metrics;

/// What a committed batch lets go of: its messages' deliveries, and for each chunk of an S3
/// object, its notification's (deleted only once its last chunk committed).
pub(super) struct Receipts {
    messages: Vec<ReceiptHandle>,
    chunks_of: Vec<ReceiptHandle>,
}

/// The receipt handles of a batch, for deleting it.
pub(super) fn receipts(batch: &[Envelope]) -> Receipts {
    let (chunks, messages): (Vec<&Envelope>, Vec<&Envelope>) =
        batch.iter().partition(|e| e.chunk_of.is_some());
    Receipts {
        messages: messages.iter().map(|e| e.receipt_handle.clone()).collect(),
        chunks_of: (chunks.iter())
            .filter_map(|e| e.chunk_of.as_ref().map(|c| c.notification.clone()))
            .collect(),
    }
}

pub(super) struct Acknowledger<Q> {
    source: Q,
    held: Held,
    parents: Parents,
    shutdown: CancellationToken,
}

impl<Q: Source> Acknowledger<Q> {
    pub(super) fn new(
        source: Q,
        held: Held,
        parents: Parents,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            source,
            held,
            parents,
            shutdown,
        }
    }

    /// Delete committed messages (and the notifications whose last chunk this was) and stop
    /// holding them; returns how many could not be deleted.
    pub(super) async fn delete(&mut self, receipts: &Receipts) -> u64 {
        let mut done: Vec<ReceiptHandle> = (receipts.chunks_of.iter())
            .filter(|parent| self.parents.committed(parent))
            .cloned()
            .collect();
        done.extend(receipts.messages.iter().cloned());
        if done.is_empty() {
            return 0;
        }
        let failed = self.try_delete(&done).await;
        self.held.release(&done);
        failed
    }

    /// A failure here loses nothing: the message is redelivered and the ledger skips it, so
    /// errors are retried briefly and then only counted.
    async fn try_delete(&mut self, receipts: &[ReceiptHandle]) -> u64 {
        let mut retry = Retry::new(
            "delete",
            "delete failed",
            Budget::Attempts(2),
            &self.shutdown,
        );
        loop {
            match self.source.delete(receipts).await {
                Ok(0) => {
                    metrics::deleted(receipts.len() as u64, 0);
                    return 0;
                }
                Ok(failed) => {
                    metrics::deleted((receipts.len() - failed) as u64, failed as u64);
                    tracing::warn!(
                        failed,
                        "SQS refused some deletes; they will be redelivered and skipped"
                    );
                    return failed as u64;
                }
                Err(e) => {
                    if retry.after(e).await.is_err() {
                        tracing::warn!(
                            messages = receipts.len(),
                            "could not delete committed messages; they will be redelivered and skipped"
                        );
                        metrics::deleted(0, receipts.len() as u64);
                        return receipts.len() as u64;
                    }
                }
            }
        }
    }
}
