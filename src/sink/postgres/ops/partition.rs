//! Optional monthly range partitions of `user_logins` by `create_date`.
//!
//! Off by default; `login-etl migrate --partition-by-month` turns a plain `user_logins` into a
//! partitioned one (empty on a new deployment, or by copying an existing table in one
//! transaction). From then on `migrate` and `run` keep partitions for the current month and the
//! next [`MONTHS_AHEAD`] created, and a DEFAULT partition catches anything else (a date far in the
//! past, a missed maintenance round), so a new month never fails a write. Removing a month is then
//! `DROP TABLE user_logins_yYYYYmMM` instead of a DELETE over the whole heap.

use chrono::{Datelike, NaiveDate, Utc};

use super::super::begin;
use super::super::SinkError;
use super::PgOperator;

/// Partitions created ahead of the current month.
pub(crate) const MONTHS_AHEAD: u32 = 3;

/// What converting found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// Rows copied from the plain table (0 on a new deployment).
    pub rows_copied: u64,
    /// Monthly partitions that exist afterwards.
    pub partitions: usize,
    /// False when the table was partitioned already (nothing was done).
    pub converted: bool,
}

/// The first day of the month `offset` months after `date`'s month.
fn month_start(date: NaiveDate, offset: i32) -> NaiveDate {
    let months = date.year() * 12 + date.month0() as i32 + offset;
    NaiveDate::from_ymd_opt(months.div_euclid(12), months.rem_euclid(12) as u32 + 1, 1)
        .expect("the first of a month exists")
}

fn partition_name(start: NaiveDate) -> String {
    format!("user_logins_y{:04}m{:02}", start.year(), start.month())
}

fn create_partition_sql(start: NaiveDate) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF user_logins FOR VALUES FROM ('{start}') TO ('{}')",
        partition_name(start),
        month_start(start, 1)
    )
}

impl PgOperator {
    /// Whether `user_logins` is partitioned.
    pub async fn is_partitioned(&mut self) -> Result<bool, SinkError> {
        let row = self
            .db
            .query_opt(
                "SELECT c.relkind = 'p' FROM pg_class c
                 WHERE c.oid = to_regclass('user_logins')",
                &[],
            )
            .await?;
        Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
    }

    /// Create the partitions for this month and the next [`MONTHS_AHEAD`] if `user_logins` is
    /// partitioned; returns how many months are covered ahead (0 for a plain table).
    pub async fn ensure_partitions(&mut self) -> Result<u32, SinkError> {
        self.ensure_partitions_from(None).await
    }

    /// Like [`ensure_partitions`](Self::ensure_partitions), also creating every month from
    /// `first`'s on (for a backfill of older data, which would otherwise land in DEFAULT).
    pub async fn ensure_partitions_from(
        &mut self,
        first: Option<NaiveDate>,
    ) -> Result<u32, SinkError> {
        if !self.is_partitioned().await? {
            return Ok(0);
        }
        let this_month = month_start(Utc::now().date_naive(), 0);
        let first = month_start(first.unwrap_or(this_month).min(this_month), 0);
        let months_back = (this_month.year() - first.year()) * 12
            + (this_month.month0() as i32 - first.month0() as i32);
        let sql: Vec<String> = (-months_back..=MONTHS_AHEAD as i32)
            .map(|m| create_partition_sql(month_start(this_month, m)))
            .collect();
        self.db.batch_execute(&sql.join(";\n")).await?;
        Ok(MONTHS_AHEAD)
    }

    /// Turn a plain `user_logins` into a monthly partitioned one, keeping every row, index and
    /// grant. One transaction: writers wait (and retry) until it commits. Does nothing when the
    /// table is partitioned already.
    pub async fn partition_by_month(&mut self) -> Result<Conversion, SinkError> {
        if self.is_partitioned().await? {
            return Ok(Conversion {
                rows_copied: 0,
                partitions: self.partition_count().await?,
                converted: false,
            });
        }
        let result = convert(self.db.client().await?).await;
        let rows_copied = result.map_err(|e| self.db.on_error(e))?;
        self.ensure_partitions().await?;
        Ok(Conversion {
            rows_copied,
            partitions: self.partition_count().await?,
            converted: true,
        })
    }

    async fn partition_count(&mut self) -> Result<usize, SinkError> {
        let row = self.db.query_one(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = to_regclass('user_logins') AND c.relname LIKE 'user_logins_y%'",
                &[],
            ).await?;
        Ok(row.get::<_, i64>(0) as usize)
    }
}

async fn convert(client: &mut tokio_postgres::Client) -> Result<u64, tokio_postgres::Error> {
    let tx = begin(client).await?;
    tx.batch_execute(
        "LOCK TABLE user_logins IN ACCESS EXCLUSIVE MODE;
         ALTER TABLE user_logins RENAME TO user_logins_unpartitioned;
         ALTER INDEX IF EXISTS user_logins_device_users RENAME TO user_logins_unpartitioned_device_users;
         ALTER INDEX IF EXISTS user_logins_ip_users RENAME TO user_logins_unpartitioned_ip_users;
         ALTER INDEX IF EXISTS user_logins_network_users RENAME TO user_logins_unpartitioned_network_users;
         CREATE TABLE user_logins (LIKE user_logins_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
             PARTITION BY RANGE (create_date);
         CREATE TABLE user_logins_default PARTITION OF user_logins DEFAULT;
         CREATE INDEX user_logins_device_users ON user_logins (masked_device_id, user_id);
         CREATE INDEX user_logins_ip_users ON user_logins (masked_ip, user_id, masked_device_id);
         CREATE INDEX user_logins_network_users ON user_logins (masked_ip_network, user_id)
             WHERE masked_ip_network IS NOT NULL;",
    )
    .await?;
    // One partition per month the existing rows cover, so they don't all land in DEFAULT.
    let months = tx
        .query(
            "SELECT DISTINCT date_trunc('month', create_date)::date FROM user_logins_unpartitioned
             WHERE create_date IS NOT NULL",
            &[],
        )
        .await?;
    for row in months {
        tx.batch_execute(&create_partition_sql(row.get(0))).await?;
    }
    // The same grants as before, so least-privilege roles keep working.
    let grants = tx
        .query(
            "SELECT grantee, privilege_type FROM information_schema.role_table_grants
             WHERE table_schema = current_schema() AND table_name = 'user_logins_unpartitioned'
               AND grantee <> current_user",
            &[],
        )
        .await?;
    for grant in grants {
        let (grantee, privilege): (String, String) = (grant.get(0), grant.get(1));
        tx.batch_execute(&format!(
            "GRANT {privilege} ON user_logins TO \"{}\"",
            grantee.replace('"', "\"\"")
        ))
        .await?;
    }
    let copied = tx
        .execute(
            "INSERT INTO user_logins SELECT * FROM user_logins_unpartitioned",
            &[],
        )
        .await?;
    tx.batch_execute("DROP TABLE user_logins_unpartitioned")
        .await?;
    tx.commit().await?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_years_both_ways() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert_eq!(
            month_start(d, 0),
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        );
        assert_eq!(
            month_start(d, 2),
            NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()
        );
        assert_eq!(
            month_start(d, -11),
            NaiveDate::from_ymd_opt(2025, 12, 1).unwrap()
        );
        assert_eq!(partition_name(month_start(d, 2)), "user_logins_y2027m01");
        assert!(create_partition_sql(month_start(d, 1))
            .ends_with("FROM ('2026-12-01') TO ('2027-01-01')"));
    }
}
