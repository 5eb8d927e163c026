//! What `backfill` registers and what `status` and `backfill --wait` read back: each backfill,
//! the objects it enqueued, and how far the consumers have read them (`s3_objects`, counted by
//! the writer in each chunk's transaction, see `s3_progress.rs`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::PgOperator;
use crate::sink::SinkError;

const START: &str = "INSERT INTO s3_backfills (bucket, prefix, since, until) \
                     VALUES ($1, $2, $3, $4) RETURNING id";
/// Objects already read are left as they are (and not enqueued again); the others are the
/// backfill's, unless an earlier backfill has them (its `--wait` keeps following them; they are
/// enqueued again, which lands nothing twice). Returns the ids of those already read.
const REGISTER: &str = "WITH input AS (\
       SELECT * FROM unnest($2::text[], $3::text[], $4::int8[], $5::timestamptz[]) \
       AS t(id, bucket, size, modified)), \
     read AS (SELECT object_id FROM s3_objects \
       WHERE object_id = ANY($2) AND finished_at IS NOT NULL), \
     registered AS (INSERT INTO s3_objects AS o (object_id, bucket, size_bytes, last_modified, \
       backfill_id) \
       SELECT id, bucket, size, modified, $1 FROM input \
       WHERE id NOT IN (SELECT object_id FROM read) ORDER BY id \
       ON CONFLICT (object_id) DO UPDATE SET bucket = EXCLUDED.bucket, \
       size_bytes = EXCLUDED.size_bytes, last_modified = EXCLUDED.last_modified, \
       backfill_id = coalesce(o.backfill_id, EXCLUDED.backfill_id) RETURNING 1) \
     SELECT object_id FROM read";
/// Counts of one group of objects: done, in flight (some chunks committed), left.
const COUNTS: &str = "count(o.object_id), coalesce(sum(o.size_bytes), 0)::int8, \
     count(o.finished_at), coalesce(sum(o.logins) FILTER (WHERE o.finished_at IS NOT NULL), 0)::int8, \
     coalesce(sum(o.size_bytes) FILTER (WHERE o.finished_at IS NOT NULL), 0)::int8, \
     count(*) FILTER (WHERE o.finished_at IS NULL AND o.chunks > 0), \
     coalesce(sum(o.logins) FILTER (WHERE o.finished_at IS NULL), 0)::int8, \
     count(*) FILTER (WHERE o.finished_at IS NULL AND o.chunks = 0), \
     coalesce(sum(o.size_bytes) FILTER (WHERE o.finished_at IS NULL), 0)::int8";

/// One object `backfill` enqueues.
#[derive(Debug, Clone)]
pub struct ObjectToRegister<'a> {
    /// `s3:` and the hash its chunks' ids start with.
    pub object_id: &'a str,
    /// Its bucket.
    pub bucket: &'a str,
    /// Its size in bytes.
    pub size: Option<u64>,
    /// Its LastModified.
    pub last_modified: Option<DateTime<Utc>>,
}

/// How far a group of S3 objects has been read. A login here is one line or array element:
/// a row, a quarantine entry, or a login left out because its subject was erased.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ObjectsProgress {
    /// Objects in the group and their bytes.
    pub objects: i64,
    /// Their size in bytes (as listed).
    pub bytes: i64,
    /// Objects read to their end.
    pub done: i64,
    /// Logins of those.
    pub done_logins: i64,
    /// Bytes of those.
    pub done_bytes: i64,
    /// Objects being read (some chunks committed).
    pub in_flight: i64,
    /// Logins committed so far of those.
    pub in_flight_logins: i64,
    /// Objects not started.
    pub left: i64,
    /// Bytes not read to their end (in flight or left).
    pub unread_bytes: i64,
}

impl ObjectsProgress {
    fn from_row(row: &tokio_postgres::Row, at: usize) -> Self {
        Self {
            objects: row.get(at),
            bytes: row.get(at + 1),
            done: row.get(at + 2),
            done_logins: row.get(at + 3),
            done_bytes: row.get(at + 4),
            in_flight: row.get(at + 5),
            in_flight_logins: row.get(at + 6),
            left: row.get(at + 7),
            unread_bytes: row.get(at + 8),
        }
    }

    /// Logins still to come, estimated from the bytes not yet read at the rate of the objects
    /// done; `None` before any is done.
    pub fn logins_left_estimate(&self) -> Option<i64> {
        if self.done_bytes <= 0 {
            return None;
        }
        let per_byte = self.done_logins as f64 / self.done_bytes as f64;
        let unread = (self.unread_bytes as f64 * per_byte) as i64;
        Some((unread - self.in_flight_logins).max(0))
    }

    /// Every object read to its end.
    pub fn finished(&self) -> bool {
        self.done == self.objects
    }
}

/// One backfill and how far its objects have been read.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillProgress {
    /// Its id (`backfill` prints it).
    pub id: i64,
    /// Where it listed.
    pub bucket: String,
    /// The prefix it listed.
    pub prefix: String,
    /// When it enqueued.
    pub started_at: DateTime<Utc>,
    /// Its objects.
    #[serde(flatten)]
    pub progress: ObjectsProgress,
}

impl PgOperator {
    /// Record a backfill about to enqueue; its id.
    pub async fn start_backfill(
        &mut self,
        bucket: &str,
        prefix: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<i64, SinkError> {
        let row = (self.db)
            .query_one(START, &[&bucket, &prefix, &since, &until])
            .await?;
        Ok(row.get(0))
    }

    /// Register objects for `backfill`; the ids of those read to their end already (not to be
    /// enqueued again).
    pub async fn register_objects(
        &mut self,
        backfill: i64,
        objects: &[ObjectToRegister<'_>],
    ) -> Result<Vec<String>, SinkError> {
        let ids: Vec<&str> = objects.iter().map(|o| o.object_id).collect();
        let buckets: Vec<&str> = objects.iter().map(|o| o.bucket).collect();
        let sizes: Vec<Option<i64>> = (objects.iter())
            .map(|o| o.size.map(|s| i64::try_from(s).unwrap_or(i64::MAX)))
            .collect();
        let modified: Vec<Option<DateTime<Utc>>> =
            objects.iter().map(|o| o.last_modified).collect();
        let rows = (self.db)
            .query(REGISTER, &[&backfill, &ids, &buckets, &sizes, &modified])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Which of these objects were read to their end already.
    pub async fn objects_read(&mut self, ids: &[String]) -> Result<Vec<String>, SinkError> {
        let sql = "SELECT object_id FROM s3_objects WHERE object_id = ANY($1) \
                   AND finished_at IS NOT NULL";
        let rows = self.db.query(sql, &[&ids]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The `limit` most recent backfills, newest first, or the one of `id`.
    pub async fn backfills(
        &mut self,
        id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<BackfillProgress>, SinkError> {
        let sql = format!(
            "SELECT b.id, b.bucket, b.prefix, b.started_at, {COUNTS} FROM s3_backfills AS b \
             LEFT JOIN s3_objects AS o ON o.backfill_id = b.id \
             WHERE $1::int8 IS NULL OR b.id = $1 GROUP BY b.id ORDER BY b.id DESC LIMIT $2"
        );
        let rows = self.db.query(&sql, &[&id, &limit]).await?;
        Ok(rows
            .iter()
            .map(|r| BackfillProgress {
                id: r.get(0),
                bucket: r.get(1),
                prefix: r.get(2),
                started_at: r.get(3),
                progress: ObjectsProgress::from_row(r, 4),
            })
            .collect())
    }

    /// Objects read from notifications S3 sent itself (no backfill enqueued them).
    pub async fn live_objects(&mut self) -> Result<ObjectsProgress, SinkError> {
        let sql = format!("SELECT {COUNTS} FROM s3_objects AS o WHERE o.backfill_id IS NULL");
        let row = self.db.query_one(&sql, &[]).await?;
        Ok(ObjectsProgress::from_row(&row, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_left_are_estimated_from_the_objects_done() {
        let progress = ObjectsProgress {
            objects: 4,
            bytes: 400,
            done: 2,
            done_logins: 20,
            done_bytes: 200,
            in_flight: 1,
            in_flight_logins: 3,
            left: 1,
            unread_bytes: 200,
        };
        assert_eq!(progress.logins_left_estimate(), Some(17));
        assert!(!progress.finished());
        let none_done = ObjectsProgress {
            done: 0,
            done_logins: 0,
            done_bytes: 0,
            ..progress
        };
        assert_eq!(none_done.logins_left_estimate(), None);
    }
}
