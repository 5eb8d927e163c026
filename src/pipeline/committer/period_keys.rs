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
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::mask::{KeyRing, Masker, PeriodKeys, WrappedPeriodKey};
    use crate::message::Outcome;
    use crate::pipeline::PipelineSettings;
    use crate::sink::{SinkError, WriteReport};
    use crate::source::{Envelope, MessageId, ReceiptHandle};
    use tokio_util::sync::CancellationToken;

    /// Keeps period keys like `period_keys` does (the first stored wins, a shredded one reads
    /// `None`), and shreds January between the rows being made and their first write.
    #[derive(Default)]
    struct Shredding {
        keys: std::collections::HashMap<String, Option<WrappedPeriodKey>>,
        shred_on_first_write: bool,
        writes: usize,
        rows: Vec<(Option<String>, PeriodKeyUse)>,
    }

    impl Store for Shredding {
        async fn write(
            &mut self,
            outcomes: &[&Outcome],
            _: bool,
        ) -> Result<WriteReport, SinkError> {
            self.writes += 1;
            if std::mem::take(&mut self.shred_on_first_write) {
                self.keys.insert("2026-01".into(), None);
            }
            let stale: HashSet<String> = (outcomes.iter())
                .filter_map(|o| match &o.kind {
                    OutcomeKind::Row { login, .. } => match login.period_key {
                        PeriodKeyUse::Missing => login.period.clone(),
                        PeriodKeyUse::Sealed => login
                            .period
                            .clone()
                            .filter(|p| matches!(self.keys.get(p), Some(None))),
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            if !stale.is_empty() {
                let periods = stale.into_iter().collect();
                return Err(SinkError::StalePeriodKeys { periods });
            }
            for o in outcomes {
                if let OutcomeKind::Row { login, .. } = &o.kind {
                    self.rows.push((login.masked_ip.clone(), login.period_key));
                }
            }
            Ok(WriteReport {
                rows: outcomes.len() as u64,
                ..WriteReport::default()
            })
        }
        async fn probe(&mut self, _: &[&Outcome]) -> Result<(), SinkError> {
            Ok(())
        }
        async fn record_solo_attempt(&mut self, _: &MessageId) -> Result<u32, SinkError> {
            Ok(1)
        }
        async fn period_keys(
            &mut self,
            periods: &[String],
            fresh: &[(String, WrappedPeriodKey)],
        ) -> Result<PeriodKeys, SinkError> {
            for (period, key) in fresh {
                self.keys.entry(period.clone()).or_insert(Some(key.clone()));
            }
            Ok((periods.iter())
                .filter_map(|p| self.keys.get(p).map(|k| (p.clone(), k.clone())))
                .collect())
        }
    }

    fn committer(store: Shredding) -> Committer<Shredding> {
        let keys = KeyRing::parse(&"11".repeat(32)).unwrap();
        let policy = crate::policy::Policy::parse(include_str!(
            "../../../examples/policies/monthly-links.toml"
        ))
        .unwrap();
        let applier = crate::policy::Applier::new(policy, keys.clone());
        let masker = Masker::hmac(&keys).with_policy(Arc::new(applier));
        Committer::new(
            store,
            masker,
            None,
            &PipelineSettings::default(),
            CancellationToken::new(),
        )
    }

    fn batch() -> Vec<Envelope> {
        (0..4)
            .map(|i| Envelope {
                message_id: MessageId(format!("m{i}")),
                receipt_handle: ReceiptHandle(format!("r{i}")),
                body: format!(
                    r#"{{"user_id":"u{i}","device_type":"ios","ip":"10.0.0.{i}","device_id":"d"}}"#
                ),
                sent_at: Utc
                    .with_ymd_and_hms(2026, 1, 10 + i as u32, 8, 0, 0)
                    .unwrap(),
                receive_count: 1,
                undated_copy: false,
                chunk_of: None,
                received: std::time::Instant::now(),
            })
            .collect()
    }

    #[tokio::test]
    async fn rows_are_sealed_under_the_key_the_store_holds_and_never_written_without_one() {
        let mut committer = committer(Shredding::default());
        let report = committer.commit(batch()).await.unwrap();
        assert_eq!(report.rows, 4);
        let store = &committer.store;
        assert_eq!(store.writes, 1, "keys were read before the first write");
        assert!(
            (store.rows.iter()).all(|(ip, used)| *used == PeriodKeyUse::Sealed
                && ip.as_deref().is_some_and(|ip| ip.starts_with("@2026-01:")))
        );
    }

    #[tokio::test]
    async fn a_key_shredded_before_the_write_is_read_again_and_the_rows_store_no_value() {
        let store = Shredding {
            shred_on_first_write: true,
            ..Shredding::default()
        };
        let mut committer = committer(store);
        let report = committer.commit(batch()).await.unwrap();
        assert_eq!(report.rows, 4);
        let store = &committer.store;
        assert_eq!(
            store.writes, 2,
            "the stale write was refused, then made again"
        );
        assert_eq!(store.rows.len(), 4, "each login once");
        assert!((store.rows.iter()).all(|row| *row == (None, PeriodKeyUse::Shredded)));
    }

    /// From the attack review of the shred (helper-31): a store whose `user_logins` holds one login per user (a DBA's unique
    /// index: the refusal search's own example), and a shred of January that commits during
    /// the search, right before its first probe.
    #[derive(Default)]
    struct RefusingThenShredded {
        keys: std::collections::HashMap<String, Option<WrappedPeriodKey>>,
        probes: usize,
        rows: Vec<(String, Option<String>)>,
        quarantined: usize,
    }

    impl RefusingThenShredded {
        /// A probe asks only about the table (`End::Rollback` skips the key check), a write
        /// about both.
        fn check(&self, outcomes: &[&Outcome], keys: bool) -> Result<(), SinkError> {
            let mut stale = Vec::new();
            let mut users = HashSet::new();
            for o in outcomes {
                if let OutcomeKind::Row { login, .. } = &o.kind {
                    let period = login.period.clone().unwrap_or_default();
                    match login.period_key {
                        PeriodKeyUse::Missing => stale.push(period),
                        PeriodKeyUse::Sealed if matches!(self.keys.get(&period), Some(None)) => {
                            stale.push(period)
                        }
                        _ => {}
                    }
                }
            }
            if keys && !stale.is_empty() {
                stale.sort();
                stale.dedup();
                return Err(SinkError::StalePeriodKeys { periods: stale });
            }
            for o in outcomes {
                if let OutcomeKind::Row { login, .. } = &o.kind {
                    if !users.insert(login.user_id.clone()) {
                        return Err(SinkError::Rejected {
                            reason: "SQLSTATE 23505, constraint `one_login_per_user`".into(),
                        });
                    }
                }
            }
            Ok(())
        }
    }

    impl Store for RefusingThenShredded {
        async fn write(
            &mut self,
            outcomes: &[&Outcome],
            _: bool,
        ) -> Result<WriteReport, SinkError> {
            self.check(outcomes, true)?;
            for o in outcomes {
                match &o.kind {
                    OutcomeKind::Row { login, .. } => self
                        .rows
                        .push((login.user_id.clone(), login.masked_ip.clone())),
                    OutcomeKind::Quarantine(_) => self.quarantined += 1,
                }
            }
            Ok(WriteReport::default())
        }
        async fn probe(&mut self, outcomes: &[&Outcome]) -> Result<(), SinkError> {
            self.probes += 1;
            if self.probes == 1 {
                self.keys.insert("2026-01".into(), None);
            }
            self.check(outcomes, false)
        }
        async fn record_solo_attempt(&mut self, _: &MessageId) -> Result<u32, SinkError> {
            Ok(1)
        }
        async fn period_keys(
            &mut self,
            periods: &[String],
            fresh: &[(String, WrappedPeriodKey)],
        ) -> Result<PeriodKeys, SinkError> {
            for (period, key) in fresh {
                self.keys.entry(period.clone()).or_insert(Some(key.clone()));
            }
            Ok((periods.iter())
                .filter_map(|p| self.keys.get(p).map(|k| (p.clone(), k.clone())))
                .collect())
        }
    }

    /// A shred while a consumer runs never stops it, even in the middle of a refusal search:
    /// probes answer about the table only, and the write after the search finds the key
    /// shredded, so the message is made again without it (and searched again).
    #[tokio::test]
    async fn a_shred_during_a_refusal_search_never_stops_the_consumer() {
        let keys = KeyRing::parse(&"11".repeat(32)).unwrap();
        let policy = crate::policy::Policy::parse(include_str!(
            "../../../examples/policies/monthly-links.toml"
        ))
        .unwrap();
        let applier = crate::policy::Applier::new(policy, keys.clone());
        let masker = Masker::hmac(&keys).with_policy(Arc::new(applier));
        let settings = PipelineSettings {
            write_retry_timeout: std::time::Duration::from_secs(3),
            ..PipelineSettings::default()
        };
        let mut committer: Committer<RefusingThenShredded> = Committer::new(
            RefusingThenShredded::default(),
            masker,
            None,
            &settings,
            CancellationToken::new(),
        );
        let login = |user: &str, i: u32| {
            format!(
                r#"{{"user_id":"{user}","device_type":"ios","ip":"10.0.0.{i}","device_id":"d{i}"}}"#
            )
        };
        let envelope = Envelope {
            message_id: MessageId("m0".into()),
            receipt_handle: ReceiptHandle("r0".into()),
            body: format!("[{},{},{}]", login("u0", 1), login("u0", 2), login("u1", 3)),
            sent_at: Utc.with_ymd_and_hms(2026, 1, 10, 8, 0, 0).unwrap(),
            receive_count: 1,
            undated_copy: false,
            chunk_of: None,
            received: std::time::Instant::now(),
        };
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            committer.commit(vec![envelope]),
        )
        .await
        .expect("the commit ends");
        let store = &committer.store;
        assert!(
            result.is_ok(),
            "the commit failed after {:?} and {} probes: {}",
            started.elapsed(),
            store.probes,
            result.unwrap_err()
        );
        assert_eq!(store.rows.len(), 2, "{:?}", store.rows);
        assert!(
            store.rows.iter().all(|(_, ip)| ip.is_none()),
            "{:?}",
            store.rows
        );
    }
}
