//! Unit tests of sealing against stand-in stores (no database).

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

/// `period_keys` as the table keeps them: the first stored key of a period wins.
fn keep_first(
    keys: &mut std::collections::HashMap<String, Option<WrappedPeriodKey>>,
    periods: &[String],
    fresh: &[(String, WrappedPeriodKey)],
) -> PeriodKeys {
    for (period, key) in fresh {
        keys.entry(period.clone()).or_insert(Some(key.clone()));
    }
    (periods.iter())
        .filter_map(|p| keys.get(p).map(|k| (p.clone(), k.clone())))
        .collect()
}

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
    async fn write(&mut self, outcomes: &[&Outcome], _: bool) -> Result<WriteReport, SinkError> {
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
        Ok(keep_first(&mut self.keys, periods, fresh))
    }
}

/// A committer over `store` whose rows are made under `monthly-links.toml` (addresses sealed
/// under a random key per month).
fn committer<S: Store>(store: S, settings: &PipelineSettings) -> Committer<S> {
    let keys = KeyRing::parse(&"11".repeat(32)).unwrap();
    let policy = crate::policy::Policy::parse(include_str!(
        "../../../../examples/policies/monthly-links.toml"
    ))
    .unwrap();
    let applier = crate::policy::Applier::new(policy, keys.clone());
    let masker = Masker::hmac(&keys).with_policy(Arc::new(applier));
    Committer::new(store, masker, None, settings, CancellationToken::new())
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
    let mut committer = committer(Shredding::default(), &PipelineSettings::default());
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
    let mut committer = committer(store, &PipelineSettings::default());
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
    async fn write(&mut self, outcomes: &[&Outcome], _: bool) -> Result<WriteReport, SinkError> {
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
        Ok(keep_first(&mut self.keys, periods, fresh))
    }
}

/// A shred while a consumer runs never stops it, even in the middle of a refusal search:
/// probes answer about the table only, and the write after the search finds the key
/// shredded, so the message is made again without it (and searched again).
#[tokio::test]
async fn a_shred_during_a_refusal_search_never_stops_the_consumer() {
    let settings = PipelineSettings {
        write_retry_timeout: std::time::Duration::from_secs(3),
        ..PipelineSettings::default()
    };
    let mut committer = committer(RefusingThenShredded::default(), &settings);
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
