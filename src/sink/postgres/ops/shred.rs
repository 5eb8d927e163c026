//! Period keys on the operator's side. `shred`: the owner's `login_etl_shred_audited` (migration
//! 22) destroys the keys of every period that ends by a time, in one transaction with its audit
//! row; it first locks `user_logins` against writes, so that no batch sealed under one of those
//! keys commits after it (a write checks its keys after the same lock:
//! `sink::postgres::period_keys`), and it records the horizon, so that no key is ever made for a
//! period before it. Also what `reveal`, `report privacy`, `rekey` and `retire-key` read.

use chrono::{DateTime, Utc};

use super::audit::Accountable;
use super::PgOperator;
use crate::mask::{period_ended_by, rewrap_period_key, KeyRing, WrappedPeriodKey};
use crate::sink::SinkError;

const LIVE: &str = "SELECT period, created_at FROM period_keys WHERE wrapped IS NOT NULL";
const ROWS: &str =
    "SELECT period, count(*) FROM user_logins WHERE period = ANY($1) GROUP BY period";
const CREATED: &str =
    "SELECT period, created_at FROM period_keys WHERE period = ANY($1) ORDER BY period";
const SHRED: &str = "SELECT audit_id, periods, rows FROM login_etl_shred_audited($1, $2, $3, $4)";
const KEYS: &str = "SELECT period, wrapped_by, wrapped, shredded_at FROM period_keys \
                    WHERE period = ANY($1)";
const HORIZONS: &str =
    "SELECT before, recorded_at FROM shred_horizons ORDER BY before DESC LIMIT 1";

/// A period's key as `reveal` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodKeyState {
    /// Its label.
    pub period: String,
    /// The key, wrapped; `None` once shredded (or never made).
    pub wrapped: Option<WrappedPeriodKey>,
    /// When it was shredded (for a period that never had a key: when its horizon was set).
    pub shredded_at: Option<DateTime<Utc>>,
}

/// A period whose key a shred destroys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShredPeriod {
    /// Its label (`2026-01`).
    pub period: String,
    /// When its key was made.
    pub created_at: DateTime<Utc>,
    /// Rows of it in `user_logins` (they stay; their sealed values can no longer be revealed).
    pub rows: u64,
}

/// A period key's life, for `report privacy`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeriodKeyRecord {
    /// Its label.
    pub period: String,
    /// When the first consumer that needed it made it.
    pub created_at: DateTime<Utc>,
    /// When `shred` destroyed it.
    pub shredded_at: Option<DateTime<Utc>>,
}

/// What a shred did.
#[derive(Debug, Clone)]
pub struct Shredded {
    /// The periods whose keys were destroyed.
    pub periods: Vec<ShredPeriod>,
    /// The audit row (`privacy_operations`).
    pub audit_id: i64,
}

impl PgOperator {
    /// The live period keys a shred `--before before` would destroy, with their rows.
    pub async fn shred_plan(
        &mut self,
        before: DateTime<Utc>,
    ) -> Result<Vec<ShredPeriod>, SinkError> {
        let target = self.db.target().to_owned();
        let client = self.db.client().await?;
        plan(client, before)
            .await
            .map_err(|e| crate::sink::postgres::error::classify(e, &target))
    }

    /// Destroy the keys of every period ending by `before` and record the horizon, audited: the
    /// owner's `login_etl_shred_audited` (migration 22), the only way keys are destroyed.
    pub async fn shred(
        &mut self,
        before: DateTime<Utc>,
        who: &Accountable,
    ) -> Result<Shredded, SinkError> {
        let target = self.db.target().to_owned();
        let pg = |e: tokio_postgres::Error| crate::sink::postgres::error::classify(e, &target);
        let result = async {
            let client = self.db.client().await?;
            let tx = crate::sink::postgres::begin(client).await.map_err(pg)?;
            let row = (tx.query_one(SHRED, &[&before, &who.os_user, &who.actor, &who.reason]))
                .await
                .map_err(pg)?;
            let (audit_id, shredded): (i64, Vec<String>) = (row.get(0), row.get(1));
            // What was destroyed, read under the function's locks, before they go.
            let mut periods: Vec<ShredPeriod> = (tx.query(CREATED, &[&shredded]).await)
                .map_err(pg)?
                .iter()
                .map(|r| ShredPeriod {
                    period: r.get(0),
                    created_at: r.get(1),
                    rows: 0,
                })
                .collect();
            count_rows(&tx, &mut periods).await.map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(Shredded { periods, audit_id })
        }
        .await;
        result.inspect_err(|_| self.db.forget_connection())
    }
}

impl PgOperator {
    /// The keys of these periods as stored, shredded ones (and those past the shred horizon)
    /// with when.
    pub async fn period_keys_of(
        &mut self,
        periods: &[String],
    ) -> Result<Vec<PeriodKeyState>, SinkError> {
        let target = self.db.target().to_owned();
        let client = self.db.client().await?;
        let result = async {
            let horizon = client.query_opt(HORIZONS, &[]).await?;
            let horizon: Option<(DateTime<Utc>, DateTime<Utc>)> =
                horizon.map(|r| (r.get(0), r.get(1)));
            // A period behind the horizon is shredded, whatever its row says (a key a writer
            // added just before the shred that set the horizon committed).
            let behind = |period: &str| {
                horizon
                    .filter(|(before, _)| period_ended_by(period, *before))
                    .map(|(_, at)| at)
            };
            let mut keys: Vec<PeriodKeyState> = (client.query(KEYS, &[&periods]).await?.iter())
                .map(|row| {
                    let period: String = row.get(0);
                    let wrapped = match (row.get::<_, Option<String>>(1), row.get(2)) {
                        (Some(wrapped_by), Some(sealed)) => {
                            Some(WrappedPeriodKey { wrapped_by, sealed })
                        }
                        _ => None,
                    };
                    match (wrapped, behind(&period)) {
                        (Some(_), Some(at)) => PeriodKeyState {
                            period,
                            wrapped: None,
                            shredded_at: Some(at),
                        },
                        (wrapped, _) => PeriodKeyState {
                            period,
                            wrapped,
                            shredded_at: row.get(3),
                        },
                    }
                })
                .collect();
            for period in periods {
                let past = behind(period);
                if let (Some(at), false) = (past, keys.iter().any(|k| &k.period == period)) {
                    keys.push(PeriodKeyState {
                        period: period.clone(),
                        wrapped: None,
                        shredded_at: Some(at),
                    });
                }
            }
            Ok(keys)
        }
        .await;
        result.map_err(|e| crate::sink::postgres::error::classify(e, &target))
    }
}

impl PgOperator {
    /// Wrap every live period key not under the ring's active key under it (after a key
    /// rotation, so that `retire-key` can retire the old one); how many were re-wrapped.
    pub async fn rewrap_period_keys(
        &mut self,
        ring: &KeyRing,
        who: &Accountable,
    ) -> Result<u64, SinkError> {
        let target = self.db.target().to_owned();
        let pg = |e: tokio_postgres::Error| crate::sink::postgres::error::classify(e, &target);
        let client = self.db.client().await?;
        let rows = (client.query(
            "SELECT period, wrapped_by, wrapped FROM period_keys \
             WHERE wrapped IS NOT NULL AND wrapped_by <> $1 AND NOT coalesce( \
             login_etl_period_end(period::text) <= (SELECT max(before) FROM shred_horizons), \
             EXISTS (SELECT 1 FROM shred_horizons))",
            &[&ring.active_id()],
        ))
        .await
        .map_err(pg)?;
        let (mut periods, mut wrapped) = (Vec::new(), Vec::new());
        for row in &rows {
            let period: String = row.get(0);
            let old = WrappedPeriodKey {
                wrapped_by: row.get(1),
                sealed: row.get(2),
            };
            let new = rewrap_period_key(ring, &period, &old)
                .map_err(|e| SinkError::KeyReplaced(e.to_string()))?;
            periods.push(period);
            wrapped.push(new.sealed);
        }
        if periods.is_empty() {
            return Ok(0);
        }
        // The owner's function writes them, audited; a key shredded meanwhile stays shredded.
        let done: i64 = (client.query_one(
            "SELECT login_etl_rewrap_period_keys($1, $2, $3, $4, $5, $6)",
            &[
                &periods,
                &ring.active_id(),
                &wrapped,
                &who.os_user,
                &who.actor,
                &who.reason,
            ],
        ))
        .await
        .map_err(pg)?
        .get(0);
        Ok(done as u64)
    }

    /// Every period key (period, made, shredded) by period, and the shred horizon: what
    /// `report privacy` shows.
    pub async fn period_key_report(
        &mut self,
    ) -> Result<(Vec<PeriodKeyRecord>, Option<DateTime<Utc>>), SinkError> {
        let horizon: Option<DateTime<Utc>> = (self
            .db
            .query_one("SELECT max(before) FROM shred_horizons", &[])
            .await?)
            .get(0);
        let sql = "SELECT period, created_at, shredded_at FROM period_keys ORDER BY period";
        let keys = (self.db.query(sql, &[]).await?.iter())
            .map(|r| {
                let period: String = r.get(0);
                // Behind the horizon is shredded, whatever the row says (see `period_keys_of`).
                let behind = horizon.filter(|h| period_ended_by(&period, *h));
                let shredded_at: Option<DateTime<Utc>> = r.get(2);
                PeriodKeyRecord {
                    shredded_at: shredded_at.or(behind),
                    created_at: r.get(1),
                    period,
                }
            })
            .collect();
        Ok((keys, horizon))
    }

    /// How many live period keys the ring key `id` wraps (`retire-key` refuses while any).
    pub async fn period_keys_wrapped_by(&mut self, id: &str) -> Result<i64, SinkError> {
        let sql = "SELECT count(*) FROM period_keys WHERE wrapped_by = $1 AND wrapped IS NOT NULL";
        Ok(self.db.query_one(sql, &[&id]).await?.get(0))
    }
}

async fn plan(
    client: &impl tokio_postgres::GenericClient,
    before: DateTime<Utc>,
) -> Result<Vec<ShredPeriod>, tokio_postgres::Error> {
    let mut periods: Vec<ShredPeriod> = (client.query(LIVE, &[]).await?.iter())
        .map(|row| ShredPeriod {
            period: row.get(0),
            created_at: row.get(1),
            rows: 0,
        })
        .filter(|p| period_ended_by(&p.period, before))
        .collect();
    periods.sort_by(|a, b| a.period.cmp(&b.period));
    count_rows(client, &mut periods).await?;
    Ok(periods)
}

/// The rows `user_logins` holds of each period.
async fn count_rows(
    client: &impl tokio_postgres::GenericClient,
    periods: &mut [ShredPeriod],
) -> Result<(), tokio_postgres::Error> {
    let labels: Vec<&str> = periods.iter().map(|p| p.period.as_str()).collect();
    for row in client.query(ROWS, &[&labels]).await? {
        let (period, rows): (String, i64) = (row.get(0), row.get(1));
        if let Some(p) = periods.iter_mut().find(|p| p.period == period) {
            p.rows = rows as u64;
        }
    }
    Ok(())
}
