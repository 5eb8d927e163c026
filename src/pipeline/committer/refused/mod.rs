//! A row PostgreSQL refuses, found and quarantined. The committer has already split the batch
//! down to one message; here that message's refused logins are found. A message of one login is
//! quarantined whole. A message of several must still commit in one transaction (one ledger
//! entry), so the logins to quarantine are found with writes that are rolled back
//! (`Store::probe`), and every other login stays a row.
//!
//! The rule: quarantine a *minimal* set of logins whose removal lets the rest commit — no
//! quarantined login would commit together with the logins that land. PostgreSQL may refuse rows
//! only together (a unique index over `user_id` a DBA added, an exclusion constraint, a trigger
//! that counts): every login may pass alone. So the logins are taken in message order into a
//! growing set that is known to commit; the first login whose addition is refused is quarantined,
//! the earlier ones are kept (found by galloping then bisecting over the prefix: for `a, a', b,
//! c, d` with `a`/`a'` conflicting, `a'` alone goes). A refusal is assumed monotone (a set
//! holding a refused set is refused), as constraints are. Probes: at most `2⌈log₂ g⌉ + 2` for
//! each quarantined login (`g` its distance from the previous one; the last one re-checks that
//! what is kept still commits, else the search starts again, at most 3 times: another consumer
//! committed a conflicting row meanwhile), then `⌈log₂ r⌉ + 1` for the `r` logins left; a
//! message of 1,000 logins with one refused login costs at most 33, one whose every login is
//! refused alone 2 per login.

use chrono::Utc;

use super::{Committer, Item, Source, Store};
use crate::pipeline::PipelineError;
use crate::retry::{Budget, Retry};
use crate::sink::SinkError;
use crate::transform::{self, Outcome, OutcomeKind};
use crate::validate::{RejectCode, Rejection};

impl<S: Store, Q: Source> Committer<S, Q> {
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
        if rows.is_empty() {
            return Err(SinkError::Rejected {
                reason: reason.to_string(),
            }
            .into());
        }
        let rejection = || {
            Rejection::new(
                RejectCode::RejectedByDatabase,
                format!("PostgreSQL rejected the row: {reason}"),
            )
        };
        let message_id = &item.envelope.message_id;
        if item.outcomes.len() == 1 {
            tracing::warn!(%message_id, %reason, "quarantining a row PostgreSQL rejected");
            let outcome = transform::quarantine(
                &item.envelope,
                &self.transformer.masker,
                rejection(),
                Utc::now(),
            );
            item.outcomes = vec![outcome];
            return Ok(());
        }
        let (refused, probes) = self.minimal_refusal(item, &rows).await?;
        if refused.is_empty() {
            // Nothing is refused once the rows are rolled back and checked at once (a conflict
            // with a transaction that has since rolled back): the write is tried again.
            tracing::warn!(%message_id, %reason, probes, "the refusal did not recur in a rolled-back write; writing again");
            item.unexplained_refusals += 1;
            if item.unexplained_refusals < UNEXPLAINED_REFUSALS {
                return Ok(());
            }
            // Refused again and again, never in a probe: nothing can be isolated; quarantined whole.
            let outcome = transform::quarantine(
                &item.envelope,
                &self.transformer.masker,
                rejection(),
                Utc::now(),
            );
            item.outcomes = vec![outcome];
            return Ok(());
        }
        for position in refused {
            let element = item.outcomes[position].element.unwrap_or(position as u32);
            tracing::warn!(%message_id, element, %reason, probes, "quarantining one login of a message that PostgreSQL rejected");
            let refusal = transform::refuse_element(
                &item.envelope,
                &self.transformer.masker,
                &self.transformer.decoding_of(&item.envelope),
                element,
                rejection(),
            );
            item.outcomes[position] = refusal.unwrap_or_else(|| {
                transform::quarantine(
                    &item.envelope,
                    &self.transformer.masker,
                    rejection(),
                    Utc::now(),
                )
            });
        }
        Ok(())
    }

    /// The positions among `rows` to quarantine (see the module docs) and how many probes it
    /// took; none if the search had to start again too often (rows committed concurrently keep
    /// changing what commits): the caller writes again.
    async fn minimal_refusal(
        &mut self,
        item: &Item,
        rows: &[usize],
    ) -> Result<(Vec<usize>, usize), PipelineError> {
        let mut probes = 0;
        for _ in 0..SEARCHES {
            if let Some(refused) = self.search(item, rows, &mut probes).await? {
                return Ok((refused, probes));
            }
        }
        Ok((Vec::new(), probes))
    }

    /// One search; `None` if a set found to commit stopped committing meanwhile (another
    /// consumer committed a conflicting row between two probes): what was learnt is stale.
    async fn search(
        &mut self,
        item: &Item,
        rows: &[usize],
        probes: &mut usize,
    ) -> Result<Option<Vec<usize>>, PipelineError> {
        let (mut kept, mut refused) = (Vec::new(), Vec::new());
        let mut rest = rows;
        while !rest.is_empty() {
            // Gallop: `kept` + rest[..good] commits, `kept` + rest[..bad] does not.
            let (mut good, mut bad, mut step) = (0, None, 1);
            while good < rest.len() {
                let n = step.min(rest.len());
                *probes += 1;
                if !self.commits(item, &kept, &rest[..n]).await? {
                    bad = Some(n);
                    break;
                }
                good = n;
                step *= 2;
            }
            let Some(mut bad) = bad else {
                return Ok(Some(refused));
            };
            while bad - good > 1 {
                let middle = good + (bad - good) / 2;
                *probes += 1;
                if self.commits(item, &kept, &rest[..middle]).await? {
                    good = middle;
                } else {
                    bad = middle;
                }
            }
            // rest[good] is refused with what commits: still so? (Else start again.)
            *probes += 1;
            if !self.commits(item, &kept, &rest[..good]).await? {
                return Ok(None);
            }
            kept.extend_from_slice(&rest[..good]);
            #[cfg(feature = "sim-mutants")]
            if good > 0 && crate::mutants::active(crate::mutants::Mutant::RefusedPairLast) {
                refused.push(rest[rest.len() - 1]);
                rest = &rest[bad..];
                continue;
            }
            refused.push(rest[good]);
            rest = &rest[bad..];
        }
        Ok(Some(refused))
    }

    /// Would the database take the rows at `kept` and `more` together (a rolled-back write)?
    async fn commits(
        &mut self,
        item: &Item,
        kept: &[usize],
        more: &[usize],
    ) -> Result<bool, PipelineError> {
        let outcomes: Vec<&Outcome> = kept
            .iter()
            .chain(more)
            .map(|&i| &item.outcomes[i])
            .collect();
        match self.probe_with_retry(&outcomes).await {
            Ok(()) => Ok(true),
            Err(SinkError::Rejected { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// A refusal that can blame the table ([`blames_the_table`]) and that every login of `part`
    /// meets alone for the same cause (up to [`SCHEMA_SAMPLE`] logins, spread over the part, at
    /// least two): the table is what is wrong, and the run stops with the cause instead of
    /// quarantining every login (whose raw values would then be gone).
    pub(super) async fn stop_if_the_table_is_wrong(
        &mut self,
        part: &[Item],
        reason: &str,
    ) -> Result<(), PipelineError> {
        if !blames_the_table(reason) {
            return Ok(());
        }
        let rows: Vec<&Outcome> = (part.iter().flat_map(|item| &item.outcomes))
            .filter(|o| matches!(o.kind, OutcomeKind::Row { .. }))
            .collect();
        if rows.len() < 2 {
            return Ok(());
        }
        let step = rows.len().div_ceil(SCHEMA_SAMPLE);
        for row in rows.iter().step_by(step) {
            match self.probe_with_retry(&[row]).await {
                Err(SinkError::Rejected { reason: alone }) if alone == reason => {}
                Err(SinkError::Rejected { .. }) | Ok(()) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Err(SinkError::Schema(format!(
            "PostgreSQL refuses every login of a batch ({} tried alone) for the same cause, \
             {reason}: user_logins cannot hold what login-etl writes; `login-etl check` names \
             the column and the fix",
            rows.len().min(SCHEMA_SAMPLE)
        ))
        .into())
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

/// Refusals a table changed by hand can make of valid logins: a value's type or length
/// (class 22; validated data fits the table as migrated: validation refuses what it would), a
/// `NOT NULL` column the writer does not fill (23502), a row no partition takes (23514 without
/// a constraint name). A named CHECK, a unique index or a foreign key is a rule about the data.
fn blames_the_table(reason: &str) -> bool {
    reason.starts_with("SQLSTATE 22")
        || reason.starts_with("SQLSTATE 23502")
        || (reason.starts_with("SQLSTATE 23514") && !reason.contains("constraint"))
}

/// The most logins of a batch tried alone before a type refusal is blamed on the table.
const SCHEMA_SAMPLE: usize = 64;

/// A write refused this many times while every rolled-back probe passes quarantines the message
/// whole (with its reason): nothing can be isolated, and the committer must make progress.
const UNEXPLAINED_REFUSALS: u8 = 3;

/// Searches started again at most, when rows committed concurrently change what commits.
const SEARCHES: usize = 3;

/// The most probes one undisturbed search makes for `n` logins of which `k` are refused.
#[cfg(test)]
pub(super) fn probe_bound(n: usize, k: usize) -> usize {
    let log2 = |x: usize| (usize::BITS - x.max(1).leading_zeros()) as usize;
    log2(n) + 1 + k * (2 * log2(n) + 2)
}

#[cfg(test)]
mod tests;
