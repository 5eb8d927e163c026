//! After the commit, delete; during it, keep the batch invisible so SQS doesn't hand it to
//! another consumer meanwhile.

use std::convert::Infallible;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::retry::{Budget, Retry};
use crate::source::{Envelope, ReceiptHandle, SqsSource};
use crate::telemetry::metrics;

/// The receipt handles of a batch, for deleting it and extending its visibility.
pub(super) fn receipts(batch: &[Envelope]) -> Vec<ReceiptHandle> {
    batch.iter().map(|e| e.receipt_handle.clone()).collect()
}

pub(super) struct Acknowledger {
    source: SqsSource,
    shutdown: CancellationToken,
}

impl Acknowledger {
    pub(super) fn new(source: SqsSource, shutdown: CancellationToken) -> Self {
        Self { source, shutdown }
    }

    /// Run `commit` while extending the batch's visibility every half visibility timeout
    /// (counted from its oldest message's receipt), by one visibility timeout each time: if this
    /// process dies, its messages come back within about one timeout.
    pub(super) async fn while_invisible<T>(
        &self,
        receipts: &[ReceiptHandle],
        oldest: Instant,
        commit: impl Future<Output = T>,
    ) -> T {
        tokio::select! {
            biased;
            done = commit => done,
            never = self.keep_invisible(receipts, oldest) => match never {},
        }
    }

    async fn keep_invisible(&self, receipts: &[ReceiptHandle], oldest: Instant) -> Infallible {
        let timeout = self.source.visibility_timeout();
        let every = (timeout / 2).max(Duration::from_millis(500));
        let mut next = oldest + every;
        loop {
            tokio::time::sleep_until(next.into()).await;
            match self.source.extend_visibility(receipts, timeout).await {
                Ok(refused) => tracing::info!(
                    messages = receipts.len(),
                    refused,
                    ?timeout,
                    "batch still in flight: visibility extended"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "could not extend visibility; messages may be redelivered (the ledger skips them)")
                }
            }
            next = Instant::now() + every;
        }
    }

    /// Delete committed messages; returns how many could not be deleted. A failure here loses
    /// nothing: the message is redelivered and the ledger skips it, so errors are retried briefly
    /// and then only counted.
    pub(super) async fn delete(&mut self, receipts: &[ReceiptHandle]) -> u64 {
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
