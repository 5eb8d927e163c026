//! A row PostgreSQL refuses, found and quarantined. The committer has already split the batch
//! down to one message; here that message's refused logins are found. A message of one login is
//! quarantined whole. A message of several must still commit in one transaction (one ledger
//! entry), so its logins are bisected with writes that are rolled back (`Store::probe`), each
//! refused one becomes a `rejected_by_database` entry of its own, and its siblings stay rows.

use chrono::Utc;

use super::{Committer, Item, Store};
use crate::event::{RejectCode, Rejection};
use crate::pipeline::PipelineError;
use crate::retry::{Budget, Retry};
use crate::sink::SinkError;
use crate::transform::{self, Outcome, OutcomeKind};

impl<S: Store> Committer<S> {
    /// Turn the logins of `item` that PostgreSQL refuses into quarantine entries. Each call
    /// quarantines at least one row; an item without rows means the quarantine insert itself
    /// was refused: the schema is broken, not the data, and that stops the run.
    pub(super) async fn refuse_rows(
        &mut self,
        item: &mut Item,
        reason: &str,
    ) -> Result<(), PipelineError> {
        let rows: Vec<usize> = (item.outcomes.iter().enumerate())
            .filter(|(_, o)| matches!(o.kind, OutcomeKind::Row { .. }))
            .map(|(i, _)| i)
            .collect();
        let Some(&last_row) = rows.last() else {
            return Err(SinkError::Rejected {
                reason: reason.to_string(),
            }
            .into());
        };
        let rejection = || {
            Rejection::new(
                RejectCode::RejectedByDatabase,
                format!("PostgreSQL rejected the row: {reason}"),
            )
        };
        let message_id = &item.envelope.message_id;
        if item.outcomes.len() == 1 {
            tracing::warn!(%message_id, %reason, "quarantining a row PostgreSQL rejected");
            let outcome =
                transform::quarantine(&item.envelope, &self.masker, rejection(), Utc::now());
            item.outcomes = vec![outcome];
            return Ok(());
        }
        let mut refused = self.refused_alone(item, rows).await?;
        if refused.is_empty() {
            // Each login passes alone, not together (a constraint across rows): one must go.
            refused.push(last_row);
        }
        for position in refused {
            let element = item.outcomes[position].element.unwrap_or(position as u32);
            tracing::warn!(%message_id, element, %reason, "quarantining one login of a message that PostgreSQL rejected");
            let refusal = transform::refuse_element(
                &item.envelope,
                &self.masker,
                &self.decoding,
                element,
                rejection(),
            );
            item.outcomes[position] = refusal.unwrap_or_else(|| {
                transform::quarantine(&item.envelope, &self.masker, rejection(), Utc::now())
            });
        }
        Ok(())
    }

    /// The positions among `rows` of the logins PostgreSQL refuses on their own (bisection).
    async fn refused_alone(
        &mut self,
        item: &Item,
        rows: Vec<usize>,
    ) -> Result<Vec<usize>, PipelineError> {
        let mut refused = Vec::new();
        let mut pending = vec![rows];
        while let Some(mut part) = pending.pop() {
            let outcomes: Vec<&Outcome> = part.iter().map(|&i| &item.outcomes[i]).collect();
            match self.probe_with_retry(&outcomes).await {
                Ok(()) => {}
                Err(SinkError::Rejected { .. }) if part.len() == 1 => refused.push(part[0]),
                Err(SinkError::Rejected { .. }) => {
                    let second = part.split_off(part.len() / 2);
                    pending.push(second);
                    pending.push(part);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(refused)
    }

    async fn probe_with_retry(&mut self, outcomes: &[&Outcome]) -> Result<(), SinkError> {
        let budget = Budget::Time(self.write_retry_timeout);
        let mut retry = Retry::new(
            "write",
            "probing which login PostgreSQL refuses failed",
            budget,
            &self.shutdown,
        );
        loop {
            match self.store.probe(outcomes).await {
                Ok(()) => return Ok(()),
                // A refusal is not retried: `after` hands it back at once.
                Err(e) => retry.after(e).await?,
            }
        }
    }
}
