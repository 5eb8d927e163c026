//! Turn a batch into outcomes and commit them. If PostgreSQL rejects the data, the batch is split
//! in halves until the offending messages are alone; those are quarantined as
//! `rejected_by_database` and everything else commits. With a dead-letter queue, quarantined
//! messages are forwarded there before their commit (a crash can duplicate a dead letter, never
//! lose one).

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
    async fn write(&mut self, outcomes: &[&Outcome]) -> Result<WriteReport, SinkError>;
}

impl Store for PgSink {
    async fn write(&mut self, outcomes: &[&Outcome]) -> Result<WriteReport, SinkError> {
        self.write_batch(outcomes).await
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
            dead_letter,
            max_receives: settings.max_receives,
            write_retry_timeout: settings.write_retry_timeout,
            shutdown,
        }
    }

    /// Transform and commit one batch; see the module docs.
    pub(super) async fn commit(
        &mut self,
        batch: Vec<Envelope>,
    ) -> Result<WriteReport, PipelineError> {
        let received_at = Utc::now();
        let items: Vec<Item> = batch
            .into_iter()
            .map(|envelope| Item {
                outcome: transform::process(
                    &envelope,
                    &self.masker,
                    self.max_receives,
                    received_at,
                ),
                envelope,
            })
            .collect();
        let mut total = WriteReport::default();
        let mut forwarded = HashSet::new();
        let mut pending = vec![items];
        while let Some(mut part) = pending.pop() {
            self.forward_quarantined(&part, &mut forwarded).await?;
            match self.write_with_retry(&part).await {
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
    async fn write_with_retry(&mut self, part: &[Item]) -> Result<WriteReport, SinkError> {
        let outcomes: Vec<&Outcome> = part.iter().map(|item| &item.outcome).collect();
        let budget = Budget::Time(self.write_retry_timeout);
        let mut retry = Retry::new(
            "batch write failed, nothing deleted",
            budget,
            &self.shutdown,
        );
        loop {
            match self.store.write(&outcomes).await {
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
            "forwarding to the dead-letter queue failed",
            budget,
            &self.shutdown,
        );
        loop {
            match dead_letter.forward(&messages).await {
                Ok(()) => break,
                Err(e) => retry.after(e).await?,
            }
        }
        forwarded.extend(messages.iter().map(|m| m.message_id.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::KeyRing;
    use crate::source::ReceiptHandle;

    /// Refuses any part holding a row of user "refused", like a CHECK constraint would.
    #[derive(Default)]
    struct Refusing {
        committed: Vec<(String, &'static str)>,
    }

    impl Store for Refusing {
        async fn write(&mut self, outcomes: &[&Outcome]) -> Result<WriteReport, SinkError> {
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
                        q.rejection.code.as_str()
                    }
                };
                self.committed.push((o.message_id.to_string(), kind));
            }
            Ok(report)
        }
    }

    fn envelope(id: usize, user: &str) -> Envelope {
        Envelope {
            message_id: MessageId(format!("m{id}")),
            receipt_handle: ReceiptHandle(format!("r{id}")),
            body: format!(
                r#"{{"user_id":"{user}","device_type":"ios","ip":"10.0.0.{id}","device_id":"d-{id}"}}"#
            ),
            sent_at: Utc::now(),
            receive_count: 1,
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
}
