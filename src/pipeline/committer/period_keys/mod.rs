//! Rows sealed under period keys (a policy's scoped `aes-siv`): before a part is written, every
//! period its rows need a key for is read from the store, created there first if no consumer
//! has (`Store::period_keys`: the first stored key wins, so all consumers seal a period alike),
//! and the messages of those rows made again. A write that finds a key shredded since the rows
//! were made ([`SinkError::StalePeriodKeys`]) comes back here too: the key is read as shredded,
//! and the rows made again store NULL in its place.

use std::collections::BTreeSet;

use chrono::Utc;

use super::{Committer, Item};
use crate::mask::PeriodKeyUse;
use crate::pipeline::source::Source;
use crate::pipeline::store::Store;
use crate::pipeline::PipelineError;
use crate::retry::{Budget, Retry};
use crate::transform::OutcomeKind;

/// Rounds of reading keys before a part must be sealed: one reads every key it needs, a second
/// covers a shred between the read and the write.
const ROUNDS: usize = 3;

impl<S: Store, Q: Source> Committer<S, Q> {
    /// Make `part` ready to write: its rows sealed under keys the store holds, `stale` periods
    /// (a write found them shredded) read again.
    pub(super) async fn seal(
        &mut self,
        part: &mut [Item],
        stale: &[String],
    ) -> Result<(), PipelineError> {
        let mut stale: BTreeSet<String> = stale.iter().cloned().collect();
        for _ in 0..ROUNDS {
            let needed: BTreeSet<String> =
                needing_keys(part).chain(stale.iter().cloned()).collect();
            if needed.is_empty() {
                return Ok(());
            }
            let needed: Vec<String> = needed.into_iter().collect();
            let masker = &self.transformer.masker;
            let fresh = masker.new_period_keys(&needed);
            let mut retry = Retry::new(
                "write",
                "reading period keys failed, nothing deleted",
                Budget::Time(self.write_retry_timeout),
                &self.shutdown,
            );
            let keys = loop {
                match self.store.period_keys(&needed, &fresh).await {
                    Ok(keys) => break keys,
                    Err(e) => retry.after(e).await?,
                }
            };
            masker.use_period_keys(&keys)?;
            let received_at = Utc::now();
            for item in part.iter_mut() {
                let needs = item.outcomes.iter().any(|o| match &o.kind {
                    OutcomeKind::Row { login, .. } => login
                        .period
                        .as_ref()
                        .is_some_and(|p| needed.binary_search(p).is_ok()),
                    OutcomeKind::Quarantine(_) => false,
                });
                if needs {
                    item.outcomes = self.transformer.transform(&item.envelope, received_at);
                }
            }
            stale.clear();
        }
        match needing_keys(part).next() {
            None => Ok(()),
            Some(period) => Err(PipelineError::Sink(crate::sink::SinkError::Schema(
                format!(
                    "no key for period {period} could be read from period_keys: is the table \
                 readable and writable by this role (docs/least-privilege.sql)?"
                ),
            ))),
        }
    }
}

/// The periods rows of `part` were made without a key for.
fn needing_keys(part: &[Item]) -> impl Iterator<Item = String> + '_ {
    (part.iter().flat_map(|item| &item.outcomes)).filter_map(|o| match &o.kind {
        OutcomeKind::Row { login, .. } if login.period_key == PeriodKeyUse::Missing => {
            login.period.clone()
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests;
