//! Every message the process holds stays invisible until it is deleted: in a receiver waiting for
//! room, in the channel, in the batcher, or being committed. Receivers register what they
//! receive, the acknowledger removes what it deleted, and one heartbeat extends (in calls of ten)
//! the messages whose visibility would run out before its next beat. Without it, a long write
//! stall let the waiting messages expire, come back with a rising receive count and, under a
//! redrive policy, go to SQS's own dead-letter queue unwritten. The registry is bounded by what the
//! pipeline can hold: the channel's capacity, a batch, one receive per receiver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

use super::source::Source;
use crate::source::{Envelope, ReceiptHandle};

/// The receipt handles held, each with when its visibility runs out.
#[derive(Clone, Default)]
pub(super) struct Held(Arc<Mutex<HashMap<ReceiptHandle, Instant>>>);

impl Held {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ReceiptHandle, Instant>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Messages just received: invisible for `timeout` from their receipt.
    pub(super) fn hold(&self, messages: &[Envelope], timeout: Duration) {
        #[cfg(feature = "sim-mutants")]
        let messages = match crate::mutants::active(crate::mutants::Mutant::DropHeartbeat) {
            true => &messages[..messages.len().saturating_sub(1)],
            false => messages,
        };
        let mut map = self.map();
        for m in messages {
            // On tokio's clock, which a paused test clock (the simulation) drives.
            let received = Instant::from_std(m.received);
            map.insert(m.receipt_handle.clone(), received + timeout);
        }
    }

    /// Messages deleted (or given up): no longer kept invisible.
    pub(super) fn release(&self, receipts: &[ReceiptHandle]) {
        let mut map = self.map();
        for r in receipts {
            map.remove(r);
        }
    }

    /// The messages whose visibility runs out by `by`.
    fn due(&self, by: Instant) -> Vec<ReceiptHandle> {
        let map = self.map();
        map.iter()
            .filter(|(_, until)| **until <= by)
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// These (if still held) are invisible until `until`.
    fn extended(&self, receipts: &[ReceiptHandle], until: Instant) {
        let mut map = self.map();
        for r in receipts {
            if let Some(u) = map.get_mut(r) {
                *u = until;
            }
        }
    }

    /// How many messages are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().len()
    }
}

/// Every quarter visibility timeout, extend by one timeout the held messages that would become
/// visible within the next two beats; until `stop`. If this process dies, its messages come
/// back within about one timeout.
pub(super) async fn heartbeat<Q: Source>(held: Held, source: Q, stop: CancellationToken) {
    let timeout = source.visibility_timeout();
    let beat = (timeout / 4).max(Duration::from_millis(250));
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(beat) => {}
        }
        let now = Instant::now();
        let due = held.due(now + 2 * beat);
        if due.is_empty() {
            continue;
        }
        match source.extend_visibility(&due, timeout).await {
            Ok(refused) => {
                held.extended(&due, now + timeout);
                tracing::debug!(
                    messages = due.len(),
                    refused,
                    ?timeout,
                    "held messages: visibility extended"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, messages = due.len(), "could not extend visibility; messages may be redelivered (the ledger skips them)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MessageId;

    fn envelope(i: usize, received: std::time::Instant) -> Envelope {
        Envelope {
            message_id: MessageId(format!("m{i}")),
            receipt_handle: ReceiptHandle(format!("r{i}")),
            body: String::new(),
            sent_at: chrono::Utc::now(),
            receive_count: 1,
            undated_copy: false,
            chunk_of: None,
            received,
        }
    }

    #[test]
    fn what_is_held_is_due_before_it_runs_out_until_extended_or_released() {
        let held = Held::default();
        let t0 = std::time::Instant::now();
        let t = Instant::from_std(t0);
        let timeout = Duration::from_secs(30);
        let early: Vec<Envelope> = (0..15).map(|i| envelope(i, t0)).collect();
        let late: Vec<Envelope> = (15..20)
            .map(|i| envelope(i, t0 + Duration::from_secs(10)))
            .collect();
        held.hold(&early, timeout);
        held.hold(&late, timeout);
        assert_eq!(held.len(), 20);
        assert!(held.due(t + Duration::from_secs(29)).is_empty());
        assert_eq!(held.due(t + timeout).len(), 15, "the early ones first");
        let due = held.due(t + timeout);
        held.extended(&due, t + Duration::from_secs(60));
        assert_eq!(held.due(t + Duration::from_secs(45)).len(), 5);
        held.release(&due);
        held.release(&[ReceiptHandle("r15".into())]);
        assert_eq!(held.len(), 4);
        held.extended(&due, t); // released ones stay released
        assert_eq!(held.len(), 4);
    }
}
