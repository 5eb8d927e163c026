//! Period keys (migration 22) on the writer's side: the wrapped random keys that seal a period's
//! revealable values, created by the first consumer that needs one (others find it), and the
//! check, inside every write's transaction, that no key a batch sealed with was shredded since.
//!
//! The check cannot race a shred: `shred` locks `user_logins` in SHARE ROW EXCLUSIVE mode before
//! it destroys keys, and a write takes ROW EXCLUSIVE on it before this check ([`super::erased::LOCK`]),
//! so a write either commits before the shred starts or reads the shred once it has committed.

use std::borrow::Borrow;

use chrono::{DateTime, Utc};

use crate::mask::{period_end, period_ended_by, PeriodKeyUse, PeriodKeys, WrappedPeriodKey};
use crate::message::{Outcome, OutcomeKind};

use super::{PgSink, SinkError};

const CREATE: &str = "INSERT INTO period_keys (period, wrapped_by, wrapped) \
                      SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) \
                      ON CONFLICT (period) DO NOTHING";
const READ: &str = "SELECT period, wrapped_by, wrapped FROM period_keys WHERE period = ANY($1)";
const SHREDDED: &str = "SELECT period FROM period_keys WHERE period = ANY($1) AND wrapped IS NULL";
const HORIZON: &str = "SELECT max(before) FROM shred_horizons";

/// Whether `period` ends by the shred horizon (shredded whether or not it had a key). A label
/// that names no period is never sealed (`mask::period_end`), so it is taken as shredded.
fn beyond(horizon: Option<DateTime<Utc>>, period: &str) -> bool {
    match horizon {
        Some(horizon) => period_ended_by(period, horizon),
        None => period_end(period).is_none(),
    }
}

impl PgSink {
    /// Store `fresh` keys where their period has none yet, then read the keys of `periods` as
    /// stored (the first consumer's wins; `None`: shredded).
    pub(crate) async fn period_keys(
        &mut self,
        periods: &[String],
        fresh: &[(String, WrappedPeriodKey)],
    ) -> Result<PeriodKeys, SinkError> {
        let client = self.db.client().await?;
        let result = async {
            let before: Option<DateTime<Utc>> = client.query_one(HORIZON, &[]).await?.get(0);
            let fresh: Vec<_> = (fresh.iter())
                .filter(|(period, _)| !beyond(before, period))
                .collect();
            if !fresh.is_empty() {
                let labels: Vec<&str> = fresh.iter().map(|(p, _)| p.as_str()).collect();
                let by: Vec<&str> = fresh.iter().map(|(_, k)| k.wrapped_by.as_str()).collect();
                let sealed: Vec<&[u8]> = fresh.iter().map(|(_, k)| k.sealed.as_slice()).collect();
                // At READ COMMITTED whatever the role's default: the trigger must read the
                // horizon of a shred this insert waited for.
                let tx = super::begin(client).await?;
                tx.execute(CREATE, &[&labels, &by, &sealed]).await?;
                tx.commit().await?;
            }
            let rows = client.query(READ, &[&periods]).await?;
            // Read again last: a shred that committed meanwhile counts (its lock on period_keys
            // made the insert wait, and the trigger stored a key behind it shredded).
            let horizon: Option<DateTime<Utc>> = client.query_one(HORIZON, &[]).await?.get(0);
            let mut keys: PeriodKeys = rows
                .iter()
                .map(|row| {
                    let wrapped = match (row.get::<_, Option<String>>(1), row.get(2)) {
                        (Some(wrapped_by), Some(sealed)) => {
                            Some(WrappedPeriodKey { wrapped_by, sealed })
                        }
                        _ => None,
                    };
                    let period: String = row.get(0);
                    let wrapped = wrapped.filter(|_| !beyond(horizon, &period));
                    (period, wrapped)
                })
                .collect();
            // Periods past the horizon that never had a key are shredded all the same.
            for period in periods {
                if beyond(horizon, period) && !keys.iter().any(|(p, _)| p == period) {
                    keys.push((period.clone(), None));
                }
            }
            Ok(keys)
        }
        .await;
        result.map_err(|e| self.db.on_error(e))
    }
}

/// The periods whose keys rows of this batch were sealed with but which are shredded now, and
/// those no key was known for (never written: the committer makes them again).
pub(super) async fn stale<O: Borrow<Outcome>>(
    tx: &tokio_postgres::Transaction<'_>,
    outcomes: &[O],
) -> Result<Vec<String>, tokio_postgres::Error> {
    let (mut sealed, mut missing) = (Vec::new(), Vec::new());
    for outcome in outcomes {
        if let OutcomeKind::Row { login, .. } = &outcome.borrow().kind {
            match (login.period_key, &login.period) {
                (PeriodKeyUse::Sealed, Some(period)) => sealed.push(period.as_str()),
                (PeriodKeyUse::Missing, Some(period)) => missing.push(period.clone()),
                _ => {}
            }
        }
    }
    sealed.sort_unstable();
    sealed.dedup();
    if !sealed.is_empty() {
        for row in tx.query(SHREDDED, &[&sealed]).await? {
            missing.push(row.get(0));
        }
        let horizon: Option<DateTime<Utc>> = tx.query_one(HORIZON, &[]).await?.get(0);
        missing.extend(
            (sealed.iter())
                .filter(|p| beyond(horizon, p))
                .map(|p| p.to_string()),
        );
    }
    missing.sort_unstable();
    missing.dedup();
    Ok(missing)
}
