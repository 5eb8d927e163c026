//! Solo attempts of suspect messages (see `migrations/0004_poison_attempts.sql`): counted in
//! their own committed transaction *before* the attempt, so an attempt that kills the process
//! still counts; cleared by the transaction that finally commits the message.

use super::{PgSink, SinkError};
use crate::message::MessageId;

const RECORD_ATTEMPT: &str = "INSERT INTO poison_attempts (message_id, attempts) VALUES ($1, 1) \
     ON CONFLICT (message_id) DO UPDATE SET attempts = poison_attempts.attempts + 1, \
     last_attempt_at = now() RETURNING attempts";

impl PgSink {
    /// Record one more solo attempt of `id`; how many there have been, this one included.
    pub(crate) async fn record_solo_attempt(&mut self, id: &MessageId) -> Result<u32, SinkError> {
        let attempts: i32 = self
            .db
            .query_one(RECORD_ATTEMPT, &[&id.as_str()])
            .await?
            .get(0);
        Ok(u32::try_from(attempts).unwrap_or(0))
    }
}
