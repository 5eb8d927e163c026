//! The privacy policies writers have written under (migration 21): every `run` records what it
//! stores in each column (its `--policy`, or what its flags store), and first checks, under a lock
//! that makes two starting consumers take turns, that no policy recorded before stores a column
//! another way.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::connection::{begin, PgConnection};
use super::{PgSink, SinkError};

const RECORDED: &str = "SELECT fingerprint, columns, first_used, canonical FROM privacy_policy \
                        ORDER BY last_used DESC, fingerprint";
const RECORD: &str = "INSERT INTO privacy_policy (fingerprint, canonical, columns) \
                      VALUES ($1, $2, $3) \
                      ON CONFLICT (fingerprint) DO UPDATE SET last_used = now()";
const WRITES_ROWS: &str = "SELECT has_table_privilege('user_logins', 'INSERT')";
/// Arbitrary constant for `pg_advisory_xact_lock`: "policy!".
const POLICY_LOCK: i64 = 0x0070_6f6c_6963_7921;

/// A recorded policy, and what it stores in each column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInForce {
    /// `pol-` and 12 hex digits (`pol-000000000000`: rows written before policies were recorded).
    pub fingerprint: String,
    /// Column → what it holds (`hmac`, `hmac/month`, `keep`, `empty`, …).
    pub columns: BTreeMap<String, String>,
    /// When a writer first wrote under it.
    pub since: DateTime<Utc>,
    /// Whether a policy file said it (else a run's flags, or rows from before policies).
    pub from_file: bool,
}

/// How a run without a policy file, and migration 21, name what they record.
pub const NO_POLICY_FILE: &str = "no policy file";

fn read(row: &tokio_postgres::Row) -> PolicyInForce {
    let columns: serde_json::Value = row.get(1);
    let columns = (columns.as_object().into_iter().flatten())
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let canonical: String = row.get(3);
    PolicyInForce {
        fingerprint: row.get(0),
        columns,
        since: row.get(2),
        from_file: !canonical.starts_with(NO_POLICY_FILE),
    }
}

/// Every recorded policy, the one used last first; shared by the writer and `report privacy`.
pub(super) async fn recorded(db: &mut PgConnection) -> Result<Vec<PolicyInForce>, SinkError> {
    Ok(db.query(RECORDED, &[]).await?.iter().map(read).collect())
}

/// The policy used last, if any.
pub(super) async fn in_force(db: &mut PgConnection) -> Result<Option<PolicyInForce>, SinkError> {
    Ok(recorded(db).await?.into_iter().next())
}

impl PgSink {
    /// The policy used last, if any.
    pub async fn policy_in_force(&mut self) -> Result<Option<PolicyInForce>, SinkError> {
        in_force(&mut self.db).await
    }

    /// Every recorded policy, the one used last first.
    pub async fn recorded_policies(&mut self) -> Result<Vec<PolicyInForce>, SinkError> {
        recorded(&mut self.db).await
    }

    /// In one transaction, with other writers' adoptions waiting: ask `refuse` about every
    /// recorded policy; if it has no objection (`None`), record `fingerprint` (its canonical text
    /// and columns) as used now. Returns the objection, nothing recorded then.
    pub async fn adopt_policy(
        &mut self,
        fingerprint: &str,
        canonical: &str,
        columns: &BTreeMap<&'static str, String>,
        refuse: impl Fn(&[PolicyInForce]) -> Option<String>,
    ) -> Result<Option<String>, SinkError> {
        let target = self.db.target().to_owned();
        let pg = |e: tokio_postgres::Error| super::error::classify(e, &target);
        let columns = serde_json::to_value(columns).unwrap_or_default();
        let client = self.db.client().await?;
        let tx = begin(client).await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&POLICY_LOCK])
            .await
            .map_err(pg)?;
        let recorded: Vec<PolicyInForce> = (tx.query(RECORDED, &[]).await.map_err(pg)?.iter())
            .map(read)
            .collect();
        if let Some(objection) = refuse(&recorded) {
            return Ok(Some(objection));
        }
        // A role that writes no rows (an operator's retention-only run) has nothing to record.
        let writes: bool = (tx.query_one(WRITES_ROWS, &[]).await.map_err(pg)?).get(0);
        if !writes {
            return Ok(None);
        }
        tx.execute(RECORD, &[&fingerprint, &canonical, &columns])
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(None)
    }
}
