//! Read-only views for operators: `status`, `quarantine list/show`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::super::SinkError;
use super::PgOperator;
use super::TableCounts;

/// What `status` shows of the database.
#[derive(Debug, Clone, Serialize)]
pub struct DbStatus {
    /// Rows, quarantine by reason, ledger ids.
    pub rows: i64,
    /// Quarantine entries by reason code.
    pub quarantined_by_code: BTreeMap<String, i64>,
    /// Of those entries, the ones whose login landed after all (a redelivery or a redriven
    /// dead letter).
    pub quarantine_resolved: i64,
    /// Ids in the ledger.
    pub processed: i64,
    /// When the last batch committed (newest ledger entry).
    pub last_commit: Option<DateTime<Utc>>,
    /// Highest applied migration.
    pub schema_version: Option<i32>,
    /// Key ids of `masked_ip` in `user_logins` with their row counts (`none` for unkeyed masks).
    pub key_ids: BTreeMap<String, i64>,
    /// Top-level field names producers sent beyond a login's six, with when each was first seen
    /// (at most 64 names; names that could be values are never recorded).
    pub unknown_fields: BTreeMap<String, DateTime<Utc>>,
}

/// One quarantine entry, as stored (the body with its PII masked).
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineEntry {
    /// SQS MessageId.
    pub message_id: String,
    /// Reason code.
    pub reason_code: String,
    /// Reason text (never quotes values).
    pub reason: String,
    /// When login-etl received it.
    pub received_at: DateTime<Utc>,
    /// When the producer sent it.
    pub sent_at: DateTime<Utc>,
    /// ApproximateReceiveCount then.
    pub receive_count: i32,
    /// Size of the raw body.
    pub body_bytes: i32,
    /// The JSON body with `ip`/`device_id` masked; `None` when the body was not a JSON object.
    pub body_masked: Option<String>,
    /// Which login of a JSON array or NDJSON body (from 0); `None`: the whole message.
    pub element: Option<i32>,
    /// Deliveries processed that were refused (1: only the first).
    pub attempts: i32,
    /// When its login landed after all (a redelivery or a redriven dead letter); `None`: open.
    pub resolved_at: Option<DateTime<Utc>>,
}

const STATUS: &str = "SELECT (SELECT max(processed_at) FROM processed_messages), \
     (SELECT max(version) FROM login_etl_schema_migrations), \
     (SELECT count(*) FROM quarantined_messages WHERE resolved_at IS NOT NULL)";
const KEY_IDS: &str = "SELECT CASE WHEN position(':' in masked_ip) > 0 \
     THEN split_part(masked_ip, ':', 1) ELSE 'none' END, count(*) FROM user_logins GROUP BY 1 ORDER BY 1";
const UNKNOWN_FIELDS: &str = "SELECT name, first_seen FROM unknown_fields ORDER BY 1";
const ENTRY_COLUMNS: &str = "SELECT message_id, reason_code, reason, received_at, sent_at, \
     receive_count, body_bytes, body_masked, element, attempts, resolved_at FROM quarantined_messages";

fn entry(r: &tokio_postgres::Row) -> QuarantineEntry {
    QuarantineEntry {
        message_id: r.get(0),
        reason_code: r.get(1),
        reason: r.get(2),
        received_at: r.get(3),
        sent_at: r.get(4),
        receive_count: r.get(5),
        body_bytes: r.get(6),
        body_masked: r.get(7),
        element: Some(r.get::<_, i32>(8)).filter(|&i| i >= 0),
        attempts: r.get(9),
        resolved_at: r.get(10),
    }
}

impl PgOperator {
    /// Counts, last commit, schema version and key ids in use.
    pub async fn status(&mut self) -> Result<DbStatus, SinkError> {
        let TableCounts {
            rows,
            quarantined_by_code,
            processed,
        } = self.counts().await?;
        let row = self.db.query_one(STATUS, &[]).await?;
        let keys = self.db.query(KEY_IDS, &[]).await?;
        let fields = self.db.query(UNKNOWN_FIELDS, &[]).await?;
        Ok(DbStatus {
            rows,
            quarantined_by_code: quarantined_by_code.into_iter().collect(),
            quarantine_resolved: row.get(2),
            processed,
            last_commit: row.get(0),
            schema_version: row.get(1),
            key_ids: keys.iter().map(|r| (r.get(0), r.get(1))).collect(),
            unknown_fields: fields.iter().map(|r| (r.get(0), r.get(1))).collect(),
        })
    }

    /// Quarantine entries, newest first, optionally of one reason and since a time.
    pub async fn quarantine_entries(
        &mut self,
        reason: Option<&str>,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<QuarantineEntry>, SinkError> {
        let sql = format!(
            "{ENTRY_COLUMNS} WHERE ($1::text IS NULL OR reason_code = $1) \
             AND ($2::timestamptz IS NULL OR received_at >= $2) ORDER BY received_at DESC LIMIT $3"
        );
        let rows = self
            .db
            .query(&sql, &[&reason, &since, &i64::from(limit)])
            .await?;
        Ok(rows.iter().map(entry).collect())
    }

    /// The quarantine entries of one message: one, or one per refused login of a message of
    /// several, in element order.
    pub async fn quarantine_entries_of(
        &mut self,
        id: &str,
    ) -> Result<Vec<QuarantineEntry>, SinkError> {
        let sql = format!("{ENTRY_COLUMNS} WHERE message_id = $1 ORDER BY element");
        Ok(self
            .db
            .query(&sql, &[&id])
            .await?
            .iter()
            .map(entry)
            .collect())
    }
}
