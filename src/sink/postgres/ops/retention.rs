//! Retention: deleting what is older than its keep-by date, in small audited transactions so that
//! writes never wait long. Login rows (`--retain-days`; partitioned tables lose whole months),
//! quarantine entries (`--quarantine-retention-days`) and the audit tables themselves
//! (`--audit-retention-days`, which deletes from `mask_reveals` and `privacy_operations` and
//! records that it did in a new `privacy_operations` row).

use chrono::{DateTime, NaiveDate, Utc};

use super::super::begin;
use super::super::SinkError;
use super::audit::{audit, Accountable};
use super::PgOperator;

/// Which count column of the audit row a deletion adds to (`rows` for login rows, `quarantined`
/// for everything else).
#[derive(Debug, Clone, Copy)]
enum Counted {
    Rows,
    Quarantined,
}

impl PgOperator {
    /// Delete rows whose `create_date` is before `cutoff`, at most `batch` per transaction (each
    /// audited); returns how many went. Partitioned tables lose whole months first.
    pub async fn delete_before(
        &mut self,
        cutoff: NaiveDate,
        batch: i64,
        who: &Accountable,
    ) -> Result<u64, SinkError> {
        const DELETE: &str = "DELETE FROM user_logins WHERE (tableoid, ctid) IN (
             SELECT tableoid, ctid FROM user_logins WHERE create_date < $1 LIMIT $2)";
        let dropped = self.drop_partitions_before(cutoff, who).await?;
        let deleted = self
            .delete_in_batches(DELETE, "retention", Counted::Rows, &cutoff, batch, who)
            .await?;
        Ok(dropped + deleted)
    }

    /// Drop the monthly partitions that end on or before `cutoff` (audited); rows dropped.
    async fn drop_partitions_before(
        &mut self,
        cutoff: NaiveDate,
        who: &Accountable,
    ) -> Result<u64, SinkError> {
        let target = self.db.target().to_owned();
        let pg = |e: tokio_postgres::Error| super::super::error::classify(e, &target);
        if !self.is_partitioned().await? {
            return Ok(0);
        }
        let result = async {
            let client = self.db.client().await?;
            // Read in a transaction: one server connection behind a pooler.
            let read = begin(client).await.map_err(pg)?;
            let whole_months = read
                .query(
                    "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                     WHERE i.inhparent = 'user_logins'::regclass AND c.relname ~ '^user_logins_y[0-9]{4}m[0-9]{2}$'
                       AND (to_date(substr(c.relname, 14, 4) || substr(c.relname, 19, 2), 'YYYYMM')
                            + interval '1 month')::date <= $1",
                    &[&cutoff],
                )
                .await
                .map_err(pg)?;
            read.commit().await.map_err(pg)?;
            let mut dropped = 0;
            for partition in whole_months {
                let name: String = partition.get(0);
                let tx = begin(client).await.map_err(pg)?;
                let count: i64 = tx
                    .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                    .await
                    .map_err(pg)?
                    .get(0);
                tx.batch_execute(&format!(
                    "ALTER TABLE user_logins DETACH PARTITION {name}; DROP TABLE {name}"
                ))
                .await
                .map_err(pg)?;
                let detail = serde_json::json!({ "before": cutoff.to_string(), "dropped_partition": name });
                audit(&tx, "retention", who, count as u64, 0, detail)
                    .await
                    .map_err(pg)?;
                tx.commit().await.map_err(pg)?;
                dropped += count as u64;
            }
            Ok(dropped)
        }
        .await;
        result.inspect_err(|_| self.db.forget_connection())
    }

    /// Delete quarantine entries received before `cutoff`, `batch` per audited transaction.
    pub async fn delete_quarantine_before(
        &mut self,
        cutoff: DateTime<Utc>,
        batch: i64,
        who: &Accountable,
    ) -> Result<u64, SinkError> {
        const DELETE: &str = "DELETE FROM quarantined_messages WHERE message_id IN (
             SELECT message_id FROM quarantined_messages WHERE received_at < $1 LIMIT $2)";
        self.delete_in_batches(
            DELETE,
            "quarantine_retention",
            Counted::Quarantined,
            &cutoff,
            batch,
            who,
        )
        .await
    }

    /// Delete audit rows (reveals, privacy operations) from before `cutoff`, `batch` per audited
    /// transaction; the audit row saying so is itself newer than any cutoff.
    pub async fn delete_audit_before(
        &mut self,
        cutoff: DateTime<Utc>,
        batch: i64,
        who: &Accountable,
    ) -> Result<u64, SinkError> {
        const DELETE: &str = "WITH r AS (DELETE FROM mask_reveals WHERE id IN (
                 SELECT id FROM mask_reveals WHERE revealed_at < $1 LIMIT $2) RETURNING 1),
             p AS (DELETE FROM privacy_operations WHERE id IN (
                 SELECT id FROM privacy_operations WHERE at < $1 LIMIT $2) RETURNING 1)
             SELECT (SELECT count(*) FROM r) + (SELECT count(*) FROM p)";
        self.delete_in_batches(
            DELETE,
            "audit_retention",
            Counted::Quarantined,
            &cutoff,
            batch,
            who,
        )
        .await
    }

    /// Run `delete` (`$1` cutoff, `$2` batch; a DELETE, or a SELECT returning the count) until a
    /// round deletes less than `batch`, each round audited as `operation` in its transaction,
    /// its count in the audit row's `counted` column.
    async fn delete_in_batches<C>(
        &mut self,
        delete: &str,
        operation: &str,
        counted: Counted,
        cutoff: &C,
        batch: i64,
        who: &Accountable,
    ) -> Result<u64, SinkError>
    where
        C: tokio_postgres::types::ToSql + Sync + std::fmt::Display,
    {
        let target = self.db.target().to_owned();
        let pg = |e: tokio_postgres::Error| super::super::error::classify(e, &target);
        let mut total = 0;
        loop {
            let result = async {
                let client = self.db.client().await?;
                let tx = begin(client).await.map_err(pg)?;
                let n = if delete.starts_with("DELETE") {
                    tx.execute(delete, &[cutoff, &batch]).await.map_err(pg)?
                } else {
                    let n: i64 = tx
                        .query_one(delete, &[cutoff, &batch])
                        .await
                        .map_err(pg)?
                        .get(0);
                    n as u64
                };
                if n > 0 {
                    let detail = serde_json::json!({ "before": cutoff.to_string() });
                    let (rows, quarantined) = match counted {
                        Counted::Rows => (n, 0),
                        Counted::Quarantined => (0, n),
                    };
                    audit(&tx, operation, who, rows, quarantined, detail)
                        .await
                        .map_err(pg)?;
                }
                tx.commit().await.map_err(pg)?;
                Ok(n)
            }
            .await;
            let n = result.inspect_err(|_| self.db.forget_connection())?;
            total += n;
            if n < batch as u64 {
                return Ok(total);
            }
        }
    }
}
