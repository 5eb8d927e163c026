//! The simulated SQS queue behind `pipeline::Source`: visibility timeouts, receive counts,
//! duplicate deliveries, random order, errors of receive, delete and visibility calls, partial
//! batch failures, lost replies, throttling; and the dead-letter queue. It checks, at every call,
//! the invariants only the queue sees: nothing is deleted before its outcome committed, nothing is
//! forwarded twice, a held message never becomes visible while its holder is alive (unless a fault
//! excuses it), and no incarnation holds more than its bound.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;

use super::world::{Receipt, Shared};
use crate::pipeline::Source;
use crate::source::{Envelope, ForwardReport, Forwarded, QueueDepth, ReceiptHandle, SourceError};

/// The queue (or, `dead_letter`, the dead-letter queue) of the simulated world.
#[derive(Clone)]
pub(super) struct SimSource {
    pub(super) world: Shared,
    pub(super) dead_letter: bool,
}

fn transient(what: &str) -> SourceError {
    SourceError::Transient(format!("simulated: {what}"))
}

impl SimSource {
    /// One try at taking up to `max` visible messages; `None` if there are none.
    fn take(&self, max: usize) -> Result<Option<Vec<Envelope>>, SourceError> {
        let mut w = self.world.lock();
        if w.strike("receive_error") {
            return Err(transient("receive failed (HTTP 500)"));
        }
        if w.strike("throttled") {
            return Err(transient("ThrottlingException"));
        }
        let now = w.queue_now();
        let mut visible: Vec<u64> = (w.queue.iter())
            .filter(|(_, m)| m.visible_at <= now)
            .map(|(seq, _)| *seq)
            .collect();
        // A held message visible again while its holder lives: the heartbeat failed it.
        for seq in &visible {
            let held = (w.receipts.values())
                .any(|r| r.seq == *seq && w.alive && r.incarnation == w.incarnation && !r.excused);
            if held {
                let id = w.queue[seq].id.clone();
                w.violation(format!(
                    "message {id} became visible again while the live process held it (heartbeat)"
                ));
                for r in w.receipts.values_mut().filter(|r| r.seq == *seq) {
                    r.excused = true;
                }
            }
        }
        if visible.is_empty() {
            return Ok(None);
        }
        visible.shuffle(w.rng());
        visible.truncate(w.rng().gen_range(1..=max.clamp(1, 10)));
        let lost = w.strike("receive_reply_lost");
        let (incarnation, visibility) = (w.incarnation, w.visibility);
        let mut out = Vec::new();
        for seq in visible {
            let duplicate = w.strike("duplicate_delivery");
            let receipt = format!("r{}", w.next_receipt);
            w.next_receipt += 1;
            let excused = lost || duplicate;
            w.receipts.insert(
                receipt.clone(),
                Receipt {
                    seq,
                    incarnation,
                    excused,
                },
            );
            let m = w.queue.get_mut(&seq).expect("visible");
            m.receive_count += 1;
            if !duplicate {
                m.visible_at = now + visibility;
            }
            out.push(Envelope {
                message_id: m.id.clone(),
                receipt_handle: crate::source::ReceiptHandle(receipt),
                body: m.body.clone(),
                sent_at: m.sent_at,
                receive_count: m.receive_count,
                undated_copy: false,
                chunk_of: None,
                received: tokio::time::Instant::now().into_std(),
            });
        }
        let ids: Vec<&str> = out.iter().map(|e| e.message_id.as_str()).collect();
        let line = format!("receive {ids:?} lost={lost}");
        w.event(&line);
        w.crash_here("receive");
        if lost {
            return Err(transient("the receive reply was lost"));
        }
        let (held, bound) = (w.held_by_live(), w.held_bound);
        if held > bound {
            w.violation(format!(
                "the process holds {held} messages, more than its bound {bound}"
            ));
        }
        Ok(Some(out))
    }

    /// Which receipts name an undeleted message; the rest are refused.
    fn known(&self, receipts: &[ReceiptHandle]) -> Vec<String> {
        let mut handles: Vec<String> = receipts.iter().map(|r| r.0.clone()).collect();
        handles.sort();
        handles
    }

    fn delete_now(&self, receipts: &[ReceiptHandle]) -> Result<usize, SourceError> {
        let handles = self.known(receipts);
        let mut w = self.world.lock();
        if w.strike("delete_error") {
            drop(w);
            self.excuse(&handles);
            return Err(transient("delete failed (HTTP 503)"));
        }
        let mut failed = 0;
        for h in &handles {
            if w.strike("delete_partial") {
                failed += 1;
                if let Some(r) = w.receipts.get_mut(h) {
                    r.excused = true;
                }
                continue;
            }
            let Some(seq) = w.receipts.get(h).map(|r| r.seq) else {
                continue;
            };
            let Some(m) = w.queue.get(&seq) else {
                continue; // deleted through another receipt
            };
            let id = m.id.clone();
            if !w.db.ledger.contains_key(id.as_str()) {
                w.violation(format!(
                    "message {id} was deleted before its outcome committed"
                ));
            }
            w.queue.remove(&seq);
            w.receipts.retain(|_, r| r.seq != seq);
            w.event(&format!("delete {id}"));
        }
        w.crash_here("delete");
        Ok(failed)
    }

    fn extend_now(
        &self,
        receipts: &[ReceiptHandle],
        timeout: Duration,
    ) -> Result<usize, SourceError> {
        let handles = self.known(receipts);
        let mut w = self.world.lock();
        if w.strike("extend_error") {
            drop(w);
            self.excuse(&handles);
            return Err(transient("change visibility failed"));
        }
        let now = w.queue_now();
        let mut refused = 0;
        for h in &handles {
            let seq = w.receipts.get(h).map(|r| r.seq);
            let live = seq.filter(|s| w.queue.contains_key(s));
            match live {
                Some(seq) if !w.strike("extend_partial") => {
                    w.queue.get_mut(&seq).expect("live").visible_at = now + timeout;
                }
                _ => {
                    refused += 1;
                    if let Some(r) = w.receipts.get_mut(h) {
                        r.excused = true;
                    }
                }
            }
        }
        w.event(&format!("extend {handles:?} refused={refused}"));
        w.crash_here("extend");
        Ok(refused)
    }

    fn forward_now(&self, messages: &[Forwarded<'_>]) -> Result<ForwardReport, SourceError> {
        let mut w = self.world.lock();
        if w.strike("forward_error") {
            return Err(transient("send to the dead-letter queue failed"));
        }

        for m in messages {
            let id = m.message_id.clone();
            let (entry, element) = id.entry(None);
            let quarantined = w.db.entries.contains_key(&(entry.to_string(), element));
            let landed = w.db.ledger.get(id.as_str()) == Some(&"row");
            if quarantined || landed {
                w.violation(format!("{id} was forwarded to the dead-letter queue again, though already quarantined or landed"));
            }
            *w.forwards.entry(id.0.clone()).or_default() += 1;
            w.dead_letters.push((id.0.clone(), m.body.to_string()));
            w.event(&format!("forward {id}"));
        }
        w.crash_here("forward");
        Ok(ForwardReport {
            forwarded: messages.len(),
            not_forwarded: vec![],
        })
    }

    fn excuse(&self, handles: &[String]) {
        let mut w = self.world.lock();
        for h in handles {
            if let Some(r) = w.receipts.get_mut(h) {
                r.excused = true;
            }
        }
    }
}

impl Source for SimSource {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Envelope>, SourceError> {
        let _busy = self.world.busy("receive");
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let taken = self.take(max);
            self.world.halt().await;
            if let Some(messages) = taken? {
                return Ok(messages);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(vec![]);
            }
            tokio::time::sleep_until(deadline.min(now + Duration::from_secs(1))).await;
        }
    }

    async fn delete(&self, receipts: &[ReceiptHandle]) -> Result<usize, SourceError> {
        let _busy = self.world.busy("delete");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let failed = self.delete_now(receipts);
        self.world.halt().await;
        failed
    }

    async fn extend_visibility(
        &self,
        receipts: &[ReceiptHandle],
        timeout: Duration,
    ) -> Result<usize, SourceError> {
        let _busy = self.world.busy("extend");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let refused = self.extend_now(receipts, timeout);
        self.world.halt().await;
        refused
    }

    fn visibility_timeout(&self) -> Duration {
        self.world.lock().visibility
    }

    async fn forward(&self, messages: &[Forwarded<'_>]) -> Result<ForwardReport, SourceError> {
        debug_assert!(self.dead_letter, "forwarding goes to the dead-letter queue");
        let _busy = self.world.busy("forward");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let report = self.forward_now(messages);
        self.world.halt().await;
        report
    }

    async fn sibling(&self, _queue_url: &str) -> Result<Self, SourceError> {
        Ok(Self {
            world: self.world.clone(),
            dead_letter: true,
        })
    }

    async fn depth(&self) -> Result<QueueDepth, SourceError> {
        let w = self.world.lock();
        Ok(QueueDepth {
            visible: w.undeleted() as u64,
            in_flight: 0,
            delayed: 0,
        })
    }

    /// The simulation sends no S3 notifications; one would be a quarantined object.
    async fn open_object(
        &self,
        _: &crate::source::s3::ObjectRef,
    ) -> Result<crate::source::s3::Opened, crate::source::s3::FetchError> {
        Err(crate::source::s3::FetchError::Unreadable(
            "no S3 in the simulation".into(),
        ))
    }
}
