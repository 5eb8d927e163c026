//! Turn a batch into outcomes and commit them. If PostgreSQL rejects the data, the batch is split
//! in halves until the offending messages are alone; those are quarantined as
//! `rejected_by_database` and everything else commits. With a dead-letter queue, quarantined
//! messages are forwarded there before their commit (a crash can duplicate a dead letter, never
//! lose one).
//!
//! Poison messages are told from crashes by evidence, not by SQS's receive count alone: a message
//! delivered more than `--max-receives` times is a *suspect* (its earlier deliveries may merely
//! have died with their consumer: an OOM kill, a crash loop, a drained node). It is taken out of
//! the batch and processed alone, each solo attempt recorded first in its own committed
//! transaction. Only a suspect whose recorded solo attempts exceed the limit is quarantined as
//! `too_many_receives`; any other suspect lands as a row (or with its precise reason).

use std::collections::HashSet;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{PipelineError, PipelineSettings};
use crate::event::{RejectCode, Rejection};
use crate::mask::Masker;
use crate::retry::{Budget, Retry};
use crate::sink::{PgSink, SinkError, WriteReport};
use crate::source::{Envelope, Forwarded, MessageId, SqsSource};
use crate::transform::{self, Outcome, OutcomeKind};

/// Where committed outcomes go: the database, or a stand-in in unit tests.
pub(super) trait Store {
    /// Commit outcomes in one transaction; `solo`: also clear their recorded solo attempts.
    async fn write(&mut self, outcomes: &[&Outcome], solo: bool) -> Result<WriteReport, SinkError>;
    /// Record one more solo attempt (committed at once); how many there have been.
    async fn record_solo_attempt(&mut self, id: &MessageId) -> Result<u32, SinkError>;
}

impl Store for PgSink {
    async fn write(&mut self, outcomes: &[&Outcome], solo: bool) -> Result<WriteReport, SinkError> {
        self.write_outcomes(outcomes, solo).await
    }

    async fn record_solo_attempt(&mut self, id: &MessageId) -> Result<u32, SinkError> {
        PgSink::record_solo_attempt(self, id).await
    }
}

/// A message and what it became, kept together so nothing has to be matched up again.
struct Item {
    envelope: Envelope,
    outcome: Outcome,
}

pub(super) struct Committer<S> {
    store: S,
    masker: Masker,
    decoding: crate::unwrap::Decoding,
    dead_letter: Option<SqsSource>,
    max_receives: u32,
    write_retry_timeout: std::time::Duration,
    shutdown: CancellationToken,
}

impl<S: Store> Committer<S> {
    pub(super) fn new(
        store: S,
        masker: Masker,
        dead_letter: Option<SqsSource>,
        settings: &PipelineSettings,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            store,
            masker,
            decoding: settings.decoding,
            dead_letter,
            max_receives: settings.max_receives,
            write_retry_timeout: settings.write_retry_timeout,
            shutdown,
        }
    }

    /// One message's outcome, counted by its shape in the metrics.
    fn transform(&self, envelope: &Envelope, received_at: chrono::DateTime<Utc>) -> Outcome {
        let outcome = transform::process_with(envelope, &self.masker, &self.decoding, received_at);
        crate::telemetry::metrics::message_shape(outcome.envelope.as_str(), outcome.compressed);
        crate::telemetry::metrics::unknown_fields(&outcome.unknown_fields);
        outcome
    }

    /// Transform and commit one batch: the ordinary messages together, then each suspect alone.
    pub(super) async fn commit(
        &mut self,
        batch: Vec<Envelope>,
    ) -> Result<WriteReport, PipelineError> {
        let received_at = Utc::now();
        let (suspects, ordinary): (Vec<Envelope>, Vec<Envelope>) = batch
            .into_iter()
            .partition(|e| e.receive_count > self.max_receives);
        #[cfg(feature = "test-hooks")]
        crate::test_hooks::before_commit(ordinary.iter().map(|e| e.body.as_str()));
        let items = ordinary
            .into_iter()
            .map(|envelope| Item {
                outcome: self.transform(&envelope, received_at),
                envelope,
            })
            .collect();
        let mut total = self.commit_items(items, false).await?;
        for envelope in suspects {
            total += self.commit_alone(envelope).await?;
        }
        Ok(total)
    }

    /// A suspect: record the attempt, then process it alone — or, once its solo attempts exceed
    /// the limit, quarantine it as a poison message.
    async fn commit_alone(&mut self, envelope: Envelope) -> Result<WriteReport, PipelineError> {
        let budget = Budget::Time(self.write_retry_timeout);
        let mut retry = Retry::new(
            "write",
            "recording a solo attempt failed",
            budget,
            &self.shutdown,
        );
        let attempts = loop {
            match self.store.record_solo_attempt(&envelope.message_id).await {
                Ok(attempts) => break attempts,
                Err(e) => retry.after(e).await?,
            }
        };
        let received_at = Utc::now();
        let outcome = if attempts > self.max_receives {
            tracing::warn!(message_id = %envelope.message_id, solo_attempts = attempts - 1, "quarantining a message that never finished when processed alone");
            transform::poison(
                &envelope,
                &self.masker,
                attempts,
                self.max_receives,
                received_at,
            )
        } else {
            tracing::info!(message_id = %envelope.message_id, receive_count = envelope.receive_count, solo_attempt = attempts, "processing a much-redelivered message alone");
            #[cfg(feature = "test-hooks")]
            crate::test_hooks::before_commit(std::iter::once(envelope.body.as_str()));
            self.transform(&envelope, received_at)
        };
        self.commit_items(vec![Item { envelope, outcome }], true)
            .await
    }

    /// Commit items, splitting on rejected rows; `solo` clears recorded solo attempts.
    async fn commit_items(
        &mut self,
        items: Vec<Item>,
        solo: bool,
    ) -> Result<WriteReport, PipelineError> {
        let mut total = WriteReport::default();
        let mut forwarded = HashSet::new();
        let mut pending = vec![items];
        while let Some(mut part) = pending.pop() {
            if part.is_empty() {
                continue;
            }
            self.forward_quarantined(&part, &mut forwarded).await?;
            match self.write_with_retry(&part, solo).await {
                Ok(report) => total += report,
                Err(SinkError::Rejected { reason }) if part.len() > 1 => {
                    tracing::warn!(%reason, messages = part.len(), "PostgreSQL rejected part of a batch; splitting it to isolate the message");
                    let second = part.split_off(part.len() / 2);
                    pending.push(second);
                    pending.push(part);
                }
                Err(SinkError::Rejected { reason }) => {
                    let mut item = part.pop().expect("a part is never empty");
                    if matches!(item.outcome.kind, OutcomeKind::Quarantine(_)) {
                        // Even the quarantine entry is refused: the schema is broken, not the data.
                        return Err(SinkError::Rejected { reason }.into());
                    }
                    tracing::warn!(message_id = %item.envelope.message_id, %reason, "quarantining a row PostgreSQL rejected");
                    let rejection = Rejection::new(
                        RejectCode::RejectedByDatabase,
                        format!("PostgreSQL rejected the row: {reason}"),
                    );
                    item.outcome =
                        transform::quarantine(&item.envelope, &self.masker, rejection, Utc::now());
                    pending.push(vec![item]);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(total)
    }

    /// Retry transient failures (connection lost, server restarting) with backoff, reconnecting.
    async fn write_with_retry(
        &mut self,
        part: &[Item],
        solo: bool,
    ) -> Result<WriteReport, SinkError> {
        let outcomes: Vec<&Outcome> = part.iter().map(|item| &item.outcome).collect();
        let budget = Budget::Time(self.write_retry_timeout);
        let mut retry = Retry::new(
            "write",
            "batch write failed, nothing deleted",
            budget,
            &self.shutdown,
        );
        loop {
            match self.store.write(&outcomes, solo).await {
                Ok(report) => return Ok(report),
                Err(e) => retry.after(e).await?,
            }
        }
    }

    /// With `--dead-letter-queue`: send the raw bodies of quarantined messages there before the
    /// commit. `forwarded` remembers what was sent, so a split batch doesn't send twice.
    async fn forward_quarantined(
        &self,
        part: &[Item],
        forwarded: &mut HashSet<MessageId>,
    ) -> Result<(), PipelineError> {
        let Some(dead_letter) = &self.dead_letter else {
            return Ok(());
        };
        let messages: Vec<Forwarded> = part
            .iter()
            .filter(|item| !forwarded.contains(&item.envelope.message_id))
            .filter_map(|item| match &item.outcome.kind {
                OutcomeKind::Quarantine(q) => Some(Forwarded {
                    body: &item.envelope.body,
                    message_id: &item.envelope.message_id,
                    reason_code: q.rejection.code.as_str(),
                }),
                OutcomeKind::Row { .. } => None,
            })
            .collect();
        if messages.is_empty() {
            return Ok(());
        }
        let budget = Budget::Time(self.write_retry_timeout);
        let mut retry = Retry::new(
            "forward",
            "forwarding to the dead-letter queue failed",
            budget,
            &self.shutdown,
        );
        let report = loop {
            match dead_letter.forward(&messages).await {
                Ok(report) => break report,
                Err(e) => retry.after(e).await?,
            }
        };
        crate::telemetry::metrics::dead_letters(report.forwarded);
        // Said once each, never retried: such a message stays in quarantine only.
        for (message_id, why) in &report.not_forwarded {
            tracing::warn!(%message_id, why, "not forwarded to the dead-letter queue; it stays in quarantine");
        }
        crate::telemetry::metrics::dead_letters_not_forwarded(report.not_forwarded.len());
        forwarded.extend(messages.iter().map(|m| m.message_id.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::KeyRing;
    use crate::source::ReceiptHandle;

    /// Refuses any part holding a row of user "refused", like a CHECK constraint would; counts
    /// solo attempts like the `poison_attempts` table.
    #[derive(Default)]
    struct Refusing {
        committed: Vec<(String, &'static str)>,
        attempts: std::collections::HashMap<MessageId, u32>,
    }

    impl Store for Refusing {
        async fn record_solo_attempt(&mut self, id: &MessageId) -> Result<u32, SinkError> {
            let attempts = self.attempts.entry(id.clone()).or_default();
            *attempts += 1;
            Ok(*attempts)
        }

        async fn write(
            &mut self,
            outcomes: &[&Outcome],
            solo: bool,
        ) -> Result<WriteReport, SinkError> {
            let refused = outcomes.iter().any(
                |o| matches!(&o.kind, OutcomeKind::Row { login, .. } if login.user_id == "refused"),
            );
            if refused {
                return Err(SinkError::Rejected {
                    reason: "SQLSTATE 23514, constraint `no_refused`".into(),
                });
            }
            let mut report = WriteReport::default();
            for o in outcomes {
                let kind = match &o.kind {
                    OutcomeKind::Row { .. } => {
                        report.rows += 1;
                        "row"
                    }
                    OutcomeKind::Quarantine(q) => {
                        report.quarantined += 1;
                        *report
                            .quarantined_by_code
                            .entry(q.rejection.code.as_str().to_string())
                            .or_default() += 1;
                        q.rejection.code.as_str()
                    }
                };
                self.committed.push((o.message_id.to_string(), kind));
                if solo {
                    self.attempts.remove(&o.message_id);
                }
            }
            Ok(report)
        }
    }

    fn envelope(id: usize, user: &str) -> Envelope {
        redelivered(id, user, 1)
    }

    fn redelivered(id: usize, user: &str, receive_count: u32) -> Envelope {
        Envelope {
            message_id: MessageId(format!("m{id}")),
            receipt_handle: ReceiptHandle(format!("r{id}")),
            body: format!(
                r#"{{"user_id":"{user}","device_type":"ios","ip":"10.0.0.{id}","device_id":"d-{id}"}}"#
            ),
            sent_at: Utc::now(),
            receive_count,
            received: std::time::Instant::now(),
        }
    }

    fn committer() -> Committer<Refusing> {
        let masker = Masker::hmac(&KeyRing::parse(&"11".repeat(32)).unwrap());
        Committer::new(
            Refusing::default(),
            masker,
            None,
            &PipelineSettings::default(),
            CancellationToken::new(),
        )
    }

    #[tokio::test]
    async fn a_refused_row_is_isolated_and_quarantined_while_the_rest_commits() {
        let mut committer = committer();
        let batch: Vec<Envelope> = (0..9)
            .map(|i| envelope(i, if i == 3 || i == 7 { "refused" } else { "u" }))
            .collect();
        let report = committer.commit(batch).await.unwrap();
        assert_eq!((report.rows, report.quarantined), (7, 2));
        let mut committed = committer.store.committed.clone();
        committed.sort();
        assert_eq!(committed.len(), 9, "every message exactly once");
        assert!(committed.contains(&("m3".into(), "rejected_by_database")));
        assert!(committed.contains(&("m7".into(), "rejected_by_database")));
        assert!(committed.contains(&("m0".into(), "row")));
    }

    #[tokio::test]
    async fn a_batch_without_refusals_commits_in_one_write() {
        let mut committer = committer();
        let batch: Vec<Envelope> = (0..5).map(|i| envelope(i, "u")).collect();
        let report = committer.commit(batch).await.unwrap();
        assert_eq!((report.rows, report.quarantined), (5, 0));
    }

    #[tokio::test]
    async fn a_much_redelivered_message_lands_as_a_row_when_its_solo_attempt_finishes() {
        let mut committer = committer();
        // Delivered 9 times (its consumers kept dying), but never processed alone before.
        let batch = vec![envelope(0, "u"), redelivered(1, "u", 9), envelope(2, "u")];
        let report = committer.commit(batch).await.unwrap();
        assert_eq!((report.rows, report.quarantined), (3, 0));
        assert!(committer.store.attempts.is_empty(), "cleared on commit");
    }

    #[tokio::test]
    async fn a_message_whose_solo_attempts_never_finished_is_quarantined_as_poison() {
        let mut committer = committer();
        let poison = MessageId("m1".into());
        // Five solo attempts were recorded and none committed: each died with its consumer.
        committer.store.attempts.insert(poison.clone(), 5);
        let batch = vec![envelope(0, "u"), redelivered(1, "u", 9)];
        let report = committer.commit(batch).await.unwrap();
        assert_eq!((report.rows, report.quarantined), (1, 1));
        assert!(committer
            .store
            .committed
            .contains(&("m1".into(), "too_many_receives")));
    }
}
