//! Batches by size or age, whichever comes first: a trickle is never held back longer than the
//! window (the clock starts at a batch's first message), a flood is cut at `batch_size`.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};

use crate::source::Envelope;

/// The batches of the messages coming out of `rx`; ends (after a last partial batch) when every
/// sender is gone.
pub(super) fn batches(
    rx: mpsc::Receiver<Envelope>,
    batch_size: usize,
    max_wait: Duration,
) -> impl Stream<Item = Vec<Envelope>> {
    ReceiverStream::new(rx).chunks_timeout(batch_size.max(1), max_wait)
}

/// When the batch's oldest message was received: its visibility timeout runs out first.
pub(super) fn oldest(batch: &[Envelope]) -> Instant {
    batch
        .iter()
        .map(|e| e.received)
        .min()
        .unwrap_or_else(Instant::now)
}
