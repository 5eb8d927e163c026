//! The privacy policy in force (migration 21): `run --policy` records the policy it writes under,
//! with what it stores in each column, and reads the last one recorded to refuse a policy that
//! would store a column that already holds values another way.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::connection::PgConnection;
use super::{PgSink, SinkError};

const IN_FORCE: &str = "SELECT fingerprint, columns, first_used FROM privacy_policy \
                        ORDER BY last_used DESC, fingerprint LIMIT 1";
const RECORD: &str = "INSERT INTO privacy_policy (fingerprint, canonical, columns) \
                      VALUES ($1, $2, $3) \
                      ON CONFLICT (fingerprint) DO UPDATE SET last_used = now()";
const CAN_READ_ROWS: &str = "SELECT has_table_privilege('user_logins', 'SELECT')";
/// One row's masks, to tell which strategy filled a table before policies were recorded.
const SAMPLE: &str = "SELECT coalesce(masked_ip, masked_device_id), masked_ip_network IS NOT NULL \
                      FROM user_logins LIMIT 1";

/// The policy recorded last, and what it stores in each column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInForce {
    /// `pol-` and 12 hex digits.
    pub fingerprint: String,
    /// Column → what it holds (`hmac`, `hmac/month`, `keep`, `empty`, …).
    pub columns: BTreeMap<String, String>,
    /// When a writer first wrote under it.
    pub since: DateTime<Utc>,
}

/// What a table filled before policies were recorded holds: one row's mask, and whether that
/// row has a network pseudonym. `None` when the table is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// `masked_ip` (or `masked_device_id`) of one row.
    pub mask: Option<String>,
    /// Whether that row's `masked_ip_network` is filled.
    pub network: bool,
}

/// The policy recorded last, if any; shared by the writer and `report privacy`.
pub(super) async fn in_force(db: &mut PgConnection) -> Result<Option<PolicyInForce>, SinkError> {
    let Some(row) = db.query_opt(IN_FORCE, &[]).await? else {
        return Ok(None);
    };
    let columns: serde_json::Value = row.get(1);
    let columns = (columns.as_object().into_iter().flatten())
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    Ok(Some(PolicyInForce {
        fingerprint: row.get(0),
        columns,
        since: row.get(2),
    }))
}

impl PgSink {
    /// The policy recorded last, if any.
    pub async fn policy_in_force(&mut self) -> Result<Option<PolicyInForce>, SinkError> {
        in_force(&mut self.db).await
    }

    /// Record that this writer writes under `fingerprint` (its canonical text and columns).
    pub async fn record_policy(
        &mut self,
        fingerprint: &str,
        canonical: &str,
        columns: &BTreeMap<&'static str, String>,
    ) -> Result<(), SinkError> {
        let columns = serde_json::to_value(columns).unwrap_or_default();
        self.db
            .execute(RECORD, &[&fingerprint, &canonical, &columns])
            .await?;
        Ok(())
    }

    /// Whether this writer may read `user_logins` (least-privilege writers may not).
    pub async fn can_read_rows(&mut self) -> Result<bool, SinkError> {
        Ok(self.db.query_one(CAN_READ_ROWS, &[]).await?.get(0))
    }

    /// One row of a table filled without a recorded policy; `None` when it is empty. Only for
    /// a writer that [`Self::can_read_rows`].
    pub async fn sample_row(&mut self) -> Result<Option<Sample>, SinkError> {
        Ok(self.db.query_opt(SAMPLE, &[]).await?.map(|row| Sample {
            mask: row.get(0),
            network: row.get(1),
        }))
    }

    /// Whether any row holds a value in `column` (one of the writer's columns, never input).
    /// Only for a writer that [`Self::can_read_rows`].
    pub async fn holds_values(&mut self, column: &str) -> Result<bool, SinkError> {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM user_logins WHERE {column} IS NOT NULL)");
        Ok(self.db.query_one(&sql, &[]).await?.get(0))
    }
}
