//! Turn a batch into outcomes and commit them (in one transaction, or in several of at most
//! `LOGINS_PER_TRANSACTION` logins when messages hold many). If PostgreSQL rejects the data, the batch is split
//! in halves until the offending messages are alone; those are quarantined as
//! `rejected_by_database` and everything else commits. With a dead-letter queue, quarantined
//! messages are forwarded there before their commit (a crash can duplicate a dead letter, never
//! lose one), once: a login quarantined before (a redelivery, a redriven dead letter that still
//! fails) is not forwarded again.
//!
//! Poison messages are told from crashes by evidence, not by SQS's receive count alone: a message
//! delivered more than `--max-receives` times is a *suspect* (its earlier deliveries may merely
//! have died with their consumer: an OOM kill, a crash loop, a drained node). It is taken out of
//! the batch and processed alone, each solo attempt recorded first in its own committed
//! transaction. Only a suspect whose recorded solo attempts exceed the limit is quarantined as
//! `too_many_receives`; any other suspect lands as a row (or with its precise reason).

use std::borrow::Cow;
use std::collections::HashSet;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::source::Source;
use super::store::Store;
use super::{PipelineError, PipelineSettings};
use crate::mask::Masker;
use crate::retry::{Budget, Retry};
use crate::sink::{SinkError, WriteReport};
use crate::source::{Envelope, Forwarded, MessageId};
use crate::transform::{self, Outcome, OutcomeKind};

/// A message and what its logins became, kept together so nothing has to be matched up again.
struct Item {
    envelope: Envelope,
    outcomes: Vec<Outcome>,
    /// Writes refused while no rolled-back probe was (see [`refused`]).
    unexplained_refusals: u8,
}

impl Item {
    fn new(envelope: Envelope, outcomes: Vec<Outcome>) -> Self {
        Self {
            envelope,
            outcomes,
            unexplained_refusals: 0,
        }
    }

    /// The last chunk of an S3 object marks each of its outcomes (again after a refusal
    /// replaced them), so its commit records the object read.
    fn mark_object_end(&mut self) {
        let last = (self.envelope.chunk_of.as_ref()).is_some_and(|chunk| chunk.last);
        for outcome in &mut self.outcomes {
            outcome.ends_object = last;
        }
    }
}

pub(super) struct Committer<S, Q = crate::source::SqsSource> {
    store: S,
    transformer: Transformer,
    dead_letter: Option<Q>,
    write_retry_timeout: std::time::Duration,
    shutdown: CancellationToken,
}

impl<S: Store, Q: Source> Committer<S, Q> {
    pub(super) fn new(
        store: S,
        masker: Masker,
        dead_letter: Option<Q>,
        settings: &PipelineSettings,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            store,
            transformer: Transformer {
                masker,
                decoding: settings.decoding,
                max_receives: settings.max_receives,
            },
            dead_letter,
            write_retry_timeout: settings.write_retry_timeout,
            shutdown,
        }
    }

    /// Transform and commit one batch: the ordinary messages a transaction-sized group at a
    /// time, each group transformed on another worker while the one before it is written
    /// ([`prepare`]); then each suspect alone.
    pub(super) async fn commit(
        &mut self,
        batch: Vec<Envelope>,
    ) -> Result<WriteReport, PipelineError> {
        let max_receives = self.transformer.max_receives;
        let (suspects, ordinary): (Vec<Envelope>, Vec<Envelope>) = batch
            .into_iter()
            .partition(|e| e.receive_count > max_receives);
        #[cfg(feature = "test-hooks")]
        crate::test_hooks::before_commit(ordinary.iter().map(|e| e.body.as_str()));
        // One group written, one ready, one being transformed: memory stays about three groups.
        let (ready, mut groups) = tokio::sync::mpsc::channel(1);
        let transformer = self.transformer.clone();
        let transforming = tokio::spawn(async move { transformer.groups(ordinary, ready).await });
        let mut total = WriteReport::default();
        while let Some(group) = groups.recv().await {
            total += self.commit_items(group, false).await?;
        }
        (transforming.await).map_err(|e| super::panicked("transform", e))?;
        for envelope in suspects {
            total += self.commit_alone(envelope).await?;
        }
        #[cfg(feature = "test-hooks")]
        crate::test_hooks::after_commit();
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
        let outcomes = if attempts > self.transformer.max_receives {
            tracing::warn!(message_id = %envelope.message_id, solo_attempts = attempts - 1, "quarantining a message that never finished when processed alone");
            vec![transform::poison(
                &envelope,
                &self.transformer.masker,
                attempts,
                self.transformer.max_receives,
                received_at,
            )]
        } else {
            tracing::info!(message_id = %envelope.message_id, receive_count = envelope.receive_count, solo_attempt = attempts, "processing a much-redelivered message alone");
            #[cfg(feature = "test-hooks")]
            crate::test_hooks::before_commit(std::iter::once(envelope.body.as_str()));
            self.transformer.transform(&envelope, received_at)
        };
        self.commit_items(vec![Item::new(envelope, outcomes)], true)
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
        let mut first_refusal = true;
        while let Some(mut part) = pending.pop() {
            if part.is_empty() {
                continue;
            }
            self.seal(&mut part, &[]).await?;
            self.forward_quarantined(&part, &mut forwarded).await?;
            part.iter_mut().for_each(Item::mark_object_end);
            match self.write_with_retry(&part, solo).await {
                Ok(report) => total += report,
                Err(SinkError::StalePeriodKeys { periods }) => {
                    self.seal(&mut part, &periods).await?;
                    pending.push(part);
                }
                Err(SinkError::Rejected { reason }) => {
                    if std::mem::take(&mut first_refusal) {
                        self.stop_if_the_table_is_wrong(&part, &reason).await?;
                    }
                    if part.len() > 1 {
                        tracing::warn!(%reason, messages = part.len(), "PostgreSQL rejected part of a batch; splitting it to isolate the message");
                        let second = part.split_off(part.len() / 2);
                        pending.push(second);
                        pending.push(part);
                    } else {
                        let mut item = part.pop().expect("a part is never empty");
                        self.refuse_rows(&mut item, &reason).await?;
                        pending.push(vec![item]);
                    }
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
        let outcomes: Vec<&Outcome> = part.iter().flat_map(|item| &item.outcomes).collect();
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
                // Not retried as it is: the rows are made again first (`seal`).
                Err(e @ SinkError::StalePeriodKeys { .. }) => return Err(e),
                Err(e) => retry.after(e).await?,
            }
        }
    }

    /// With `--dead-letter-queue`: send the raw bodies of quarantined messages there before the
    /// commit, unless quarantined before (their dead letter went then). `forwarded` remembers
    /// what was sent, so a split batch doesn't send twice.
    async fn forward_quarantined(
        &mut self,
        part: &[Item],
        forwarded: &mut HashSet<MessageId>,
    ) -> Result<(), PipelineError> {
        if self.dead_letter.is_none() {
            return Ok(());
        }
        let refused: Vec<(&Item, &Outcome, crate::validate::RejectCode)> = part
            .iter()
            .flat_map(|item| item.outcomes.iter().map(move |o| (item, o)))
            // What of an S3 object could not be read has no raw body to forward.
            .filter(|(item, _)| {
                item.envelope
                    .chunk_of
                    .as_ref()
                    .map_or(true, |c| c.refusal.is_none())
            })
            .filter_map(|(item, outcome)| match &outcome.kind {
                OutcomeKind::Quarantine(q) => Some((item, outcome, q.rejection.code)),
                OutcomeKind::Row { .. } => None,
            })
            .collect();
        if refused.is_empty() {
            return Ok(());
        }
        let outcomes: Vec<&Outcome> = refused.iter().map(|(_, outcome, _)| *outcome).collect();
        let budget = Budget::Time(self.write_retry_timeout);
        let shutdown = self.shutdown.clone();
        let mut retry = Retry::new(
            "forward",
            "forwarding to the dead-letter queue failed",
            budget,
            &shutdown,
        );
        // Decided again before every attempt: an erasure that committed while the queue was
        // down withholds what it names from the retry too.
        let (messages, report) = loop {
            let before = self.not_to_forward(&outcomes).await?;
            #[cfg(feature = "sim-mutants")]
            let before =
                match crate::mutants::active(crate::mutants::Mutant::ForwardEveryRedelivery) {
                    true => HashSet::new(),
                    false => before,
                };
            let Some(dead_letter) = &self.dead_letter else {
                return Ok(());
            };
            let quarantined: Vec<(MessageId, Cow<'_, str>, &str, _)> = (refused.iter().enumerate())
                .filter(|(i, _)| !before.contains(i))
                .map(|(_, refused)| *refused)
                .filter_map(|(item, outcome, code)| {
                    let (id, body) = self.dead_letter_of(&item.envelope, outcome.element)?;
                    Some((id, body, code.as_str(), item.envelope.sent_at))
                })
                .filter(|(id, _, _, _)| !forwarded.contains(id))
                .collect();
            if quarantined.is_empty() {
                return Ok(());
            }
            let messages: Vec<Forwarded> = quarantined
                .iter()
                .map(|(message_id, body, reason_code, sent_at)| Forwarded {
                    body,
                    message_id,
                    reason_code,
                    sent_at: *sent_at,
                })
                .collect();
            match dead_letter.forward(&messages).await {
                Ok(report) => {
                    let sent: Vec<MessageId> =
                        (messages.iter()).map(|m| m.message_id.clone()).collect();
                    break (sent, report);
                }
                Err(e) => retry.after(e).await?,
            }
        };
        crate::telemetry::metrics::dead_letters(report.forwarded);
        // Said once each, never retried: such a message stays in quarantine only.
        for (message_id, why) in &report.not_forwarded {
            tracing::warn!(%message_id, why, "not forwarded to the dead-letter queue; it stays in quarantine");
        }
        crate::telemetry::metrics::dead_letters_not_forwarded(report.not_forwarded.len());
        forwarded.extend(messages);
        Ok(())
    }

    /// Which of these refused logins must not be forwarded (retried like a write): see
    /// [`Store::not_to_forward`].
    async fn not_to_forward(
        &mut self,
        refused: &[&Outcome],
    ) -> Result<HashSet<usize>, PipelineError> {
        let budget = Budget::Time(self.write_retry_timeout);
        let mut retry = Retry::new(
            "write",
            "reading what was quarantined before failed",
            budget,
            &self.shutdown,
        );
        loop {
            match self.store.not_to_forward(refused).await {
                Ok(before) => return Ok(before),
                Err(e) => retry.after(e).await?,
            }
        }
    }

    /// What goes to the dead-letter queue for a quarantined message, or for element `i` of one:
    /// that element's text alone (its siblings landed), under `<message id>#<i>`.
    fn dead_letter_of<'e>(
        &self,
        envelope: &'e Envelope,
        element: Option<u32>,
    ) -> Option<(MessageId, Cow<'e, str>)> {
        match element {
            None => Some((envelope.message_id.clone(), Cow::Borrowed(&envelope.body))),
            Some(i) => {
                let text = transform::element_text(
                    &envelope.body,
                    &self.transformer.decoding_of(envelope),
                    i,
                )?;
                Some((envelope.message_id.of_element(i), Cow::Owned(text)))
            }
        }
    }
}

mod period_keys;
mod prepare;
mod refused;

use prepare::Transformer;

#[cfg(test)]
mod tests;
