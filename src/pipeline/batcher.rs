//! Batches by size, bytes or age, whichever comes first: a trickle is never held back longer than
//! the window (the clock starts at a batch's first message), a flood is cut at `batch_size`
//! messages or [`defaults::BATCH_MAX_BYTES`](super::defaults::BATCH_MAX_BYTES) of bodies. The
//! bodies waiting in the channel are bounded too ([`Buffer`]), so memory stays flat whatever
//! size the messages are: 1,000 messages of 256 KiB would otherwise be 256 MiB in the channel.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio_stream::Stream;

use crate::source::Envelope;

/// Room for message bodies between the receivers and the batcher, in KiB: a receiver waits for
/// room before handing a message on; the batcher frees it as it takes the message.
#[derive(Clone)]
pub(super) struct Buffer {
    room: Arc<Semaphore>,
    kib: u32,
}

impl Buffer {
    pub(super) fn new(bytes: usize) -> Self {
        let kib = u32::try_from(bytes / 1024).unwrap_or(u32::MAX).max(1);
        Self {
            room: Arc::new(Semaphore::new(kib as usize)),
            kib,
        }
    }

    /// Wait until the buffer has room for this body, and take it.
    pub(super) async fn reserve(&self, body_bytes: usize) {
        if let Ok(permit) = self.room.acquire_many(self.cost(body_bytes)).await {
            permit.forget();
        }
    }

    fn release(&self, body_bytes: usize) {
        self.room.add_permits(self.cost(body_bytes) as usize);
    }

    /// KiB a body counts for (at least 1, at most the whole buffer).
    fn cost(&self, body_bytes: usize) -> u32 {
        let kib = u32::try_from(body_bytes / 1024 + 1).unwrap_or(u32::MAX);
        kib.min(self.kib)
    }
}

/// When a batch is cut.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Most messages.
    pub(super) messages: usize,
    /// Most body bytes (a batch always takes at least one message).
    pub(super) bytes: usize,
    /// Longest the first message waits.
    pub(super) max_wait: Duration,
}

/// The batches of the messages coming out of `rx`; ends (after a last partial batch) when every
/// sender is gone.
pub(super) fn batches(
    rx: mpsc::Receiver<Envelope>,
    buffer: Buffer,
    limits: Limits,
) -> impl Stream<Item = Vec<Envelope>> {
    futures::stream::unfold((rx, None), move |(mut rx, carried)| {
        let buffer = buffer.clone();
        async move {
            let take = |envelope: Envelope| {
                buffer.release(envelope.body.len());
                envelope
            };
            let first = match carried {
                Some(envelope) => envelope,
                None => take(rx.recv().await?),
            };
            let deadline = tokio::time::Instant::now() + limits.max_wait;
            let mut bytes = first.body.len();
            let mut batch = vec![first];
            let mut carried = None;
            while batch.len() < limits.messages.max(1) {
                let Ok(Some(next)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
                    break;
                };
                let next = take(next);
                if bytes + next.body.len() > limits.bytes {
                    carried = Some(next);
                    break;
                }
                bytes += next.body.len();
                batch.push(next);
            }
            Some((batch, (rx, carried)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{MessageId, ReceiptHandle};
    use tokio_stream::StreamExt;

    fn envelope(bytes: usize) -> Envelope {
        Envelope {
            message_id: MessageId("m".into()),
            receipt_handle: ReceiptHandle("r".into()),
            body: "x".repeat(bytes),
            sent_at: chrono::Utc::now(),
            receive_count: 1,
            undated_copy: false,
            chunk_of: None,
            received: std::time::Instant::now(),
        }
    }

    /// On tokio's paused clock: the 50 ms age limit passes only when every task waits, so the
    /// batch layout is the same on a loaded machine.
    #[tokio::test(start_paused = true)]
    async fn batches_are_cut_by_count_bytes_or_age_and_the_buffer_is_bounded() {
        let (tx, rx) = mpsc::channel(100);
        let buffer = Buffer::new(300 << 10);
        let limits = Limits {
            messages: 4,
            bytes: 250 << 10,
            max_wait: Duration::from_millis(50),
        };
        let sizes = [10, 10, 10, 10, 10, 100 << 10, 100 << 10, 100 << 10, 10];
        let producer = {
            let buffer = buffer.clone();
            tokio::spawn(async move {
                for size in sizes {
                    buffer.reserve(size).await;
                    tx.send(envelope(size)).await.unwrap();
                }
            })
        };
        let batches: Vec<Vec<usize>> = batches(rx, buffer.clone(), limits)
            .map(|b| b.iter().map(|e| e.body.len()).collect())
            .collect()
            .await;
        producer.await.unwrap();
        let expected: Vec<Vec<usize>> = vec![
            vec![10; 4],
            vec![10, 100 << 10, 100 << 10],
            vec![100 << 10, 10],
        ];
        assert_eq!(batches, expected);
        assert_eq!(buffer.room.available_permits(), 300, "all room given back");
    }
}
