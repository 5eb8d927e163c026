//! What `report privacy` reads: the audit's counts, and a bounded sample of the masks an attack
//! is run against.

use super::super::policy_record::{self, PolicyInForce};
use super::super::SinkError;
use super::PgOperator;

/// The last run of each kind of retention, with the cutoff it deleted before.
const RETENTION: &str = "SELECT DISTINCT ON (operation) operation, at, detail->>'before' \
                         FROM privacy_operations \
                         WHERE operation IN ('retention', 'quarantine_retention', 'audit_retention') \
                         ORDER BY operation, at DESC";

/// Rows per period of time-scoped pseudonyms, newest first, at most this many periods.
const PERIODS: &str = "SELECT period, count(*) FROM user_logins WHERE period IS NOT NULL \
                       GROUP BY period ORDER BY period DESC LIMIT 120";

/// Every period rows carry, in order: one index lookup per period (`user_logins_period`,
/// migration 22), not a scan of the table.
pub(super) const STORED_PERIODS: &str = "WITH RECURSIVE p(v) AS ( \
       SELECT min(period) FROM user_logins WHERE period IS NOT NULL \
       UNION ALL \
       SELECT (SELECT min(period) FROM user_logins WHERE period > p.v) FROM p WHERE p.v IS NOT NULL) \
     SELECT v::text FROM p WHERE v IS NOT NULL";

/// Columns of `user_logins` that hold masks.
const MASKED_COLUMNS: [&str; 3] = ["masked_ip", "masked_device_id", "masked_ip_network"];

impl PgOperator {
    /// Reveals (`mask_reveals`) and each privacy operation (`privacy_operations`), with counts.
    /// A role that may not read the reveal audit (an operator) gets the operations only.
    pub async fn audit_counts(&mut self) -> Result<Vec<(String, i64)>, SinkError> {
        let readable = "SELECT has_table_privilege('mask_reveals', 'SELECT')";
        let reveals: bool = self.db.query_one(readable, &[]).await?.get(0);
        let mut counts = Vec::new();
        if reveals {
            let row = (self.db)
                .query_one("SELECT count(*) FROM mask_reveals", &[])
                .await?;
            counts.push(("reveal".to_string(), row.get(0)));
        }
        let rows = self
            .db
            .query(
                "SELECT operation, count(*) FROM privacy_operations GROUP BY operation ORDER BY 1",
                &[],
            )
            .await?;
        counts.extend(rows.iter().map(|r| (r.get(0), r.get(1))));
        counts.sort();
        Ok(counts)
    }

    /// The policy recorded last by a writer (`run --policy`), if any.
    pub async fn policy_in_force(&mut self) -> Result<Option<PolicyInForce>, SinkError> {
        policy_record::in_force(&mut self.db).await
    }

    /// Every recorded policy, the one used last first.
    pub async fn recorded_policies(&mut self) -> Result<Vec<PolicyInForce>, SinkError> {
        policy_record::recorded(&mut self.db).await
    }

    /// Every period rows of `user_logins` carry.
    pub async fn stored_periods(&mut self) -> Result<Vec<String>, SinkError> {
        let rows = self.db.query(STORED_PERIODS, &[]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// `(operation, when, cutoff)` of the last run of each kind of retention (the audit's
    /// record: retention is a `run` flag, so this is where its settings show).
    pub async fn last_retention(
        &mut self,
    ) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>, Option<String>)>, SinkError> {
        let rows = self.db.query(RETENTION, &[]).await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// `(period, rows)` of the rows whose pseudonyms are scoped to a period, newest first.
    pub async fn periods(&mut self) -> Result<Vec<(String, i64)>, SinkError> {
        let rows = self.db.query(PERIODS, &[]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Up to `limit` distinct values of one of [`MASKED_COLUMNS`].
    pub async fn mask_sample(
        &mut self,
        column: &str,
        limit: i64,
    ) -> Result<Vec<String>, SinkError> {
        // Only our own column names reach the SQL text.
        if !MASKED_COLUMNS.contains(&column) {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT DISTINCT {column} FROM user_logins WHERE {column} IS NOT NULL LIMIT $1"
        );
        let rows = self.db.query(&sql, &[&limit]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
