//! Ledger retention: `processed_messages` loses the ids older than the retention, in small
//! batches, each its own short transaction.
//!
//! Why it is safe: SQS cannot hand out a message older than the queue's retention period, so an id
//! older than that (plus a margin) can never be redelivered, and skipping it needs no ledger row.
//! `run` refuses a retention not longer than the queue's. Why it never blocks the write path: each
//! batch deletes at most `batch` old rows with `FOR UPDATE SKIP LOCKED` and commits at once; the
//! write path only inserts new ids, which no batch touches.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::super::SinkError;
use super::PgOperator;

/// Rows deleted per transaction.
pub const PRUNE_BATCH: i64 = 1_000;

/// Pause between batches, so a long prune leaves the database to the writers.
const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(20);

impl PgOperator {
    /// Delete one batch of ledger ids processed before `cutoff`; returns how many went.
    pub async fn prune_ledger_batch(
        &mut self,
        cutoff: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, SinkError> {
        self.db
            .execute(
                "DELETE FROM processed_messages WHERE message_id IN (
                     SELECT message_id FROM processed_messages
                     WHERE processed_at < $1
                     ORDER BY processed_at
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED)",
                &[&cutoff, &batch],
            )
            .await
    }

    /// Delete every ledger id processed before `cutoff`, batch after batch, until none is left or
    /// `shutdown` is requested. Returns how many went.
    pub async fn prune_ledger(
        &mut self,
        cutoff: DateTime<Utc>,
        shutdown: &CancellationToken,
    ) -> Result<u64, SinkError> {
        let mut total = 0;
        while !shutdown.is_cancelled() {
            let deleted = self.prune_ledger_batch(cutoff, PRUNE_BATCH).await?;
            total += deleted;
            if deleted < PRUNE_BATCH as u64 {
                break;
            }
            tokio::time::sleep(PAUSE_BETWEEN_BATCHES).await;
        }
        Ok(total)
    }
}
