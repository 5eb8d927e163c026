//! After the commit, delete, and stop keeping the batch invisible (the [heartbeat](super::held)
//! keeps every held message invisible until then, so SQS doesn't hand it to another consumer).

use tokio_util::sync::CancellationToken;

use super::held::Held;
use super::source::Source;
use crate::retry::{Budget, Retry};
use crate::source::{Envelope, ReceiptHandle};
use crate::telemetry::metrics;

/// The receipt handles of a batch, for deleting it and extending its visibility.
pub(super) fn receipts(batch: &[Envelope]) -> Vec<ReceiptHandle> {
    batch.iter().map(|e| e.receipt_handle.clone()).collect()
}

pub(super) struct Acknowledger<Q> {
    source: Q,
    held: Held,
    shutdown: CancellationToken,
}

impl<Q: Source> Acknowledger<Q> {
    pub(super) fn new(source: Q, held: Held, shutdown: CancellationToken) -> Self {
        Self {
            source,
            held,
            shutdown,
        }
    }

    /// Delete committed messages and stop holding them; returns how many could not be deleted.
    pub(super) async fn delete(&mut self, receipts: &[ReceiptHandle]) -> u64 {
        let failed = self.try_delete(receipts).await;
        self.held.release(receipts);
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
