//! What a received message is to the rest of the pipeline, and the two SQS identifiers that must
//! not be confused: the message id (stable across deliveries: the deduplication key) and the
//! receipt handle (one delivery: what deletes it).

use std::time::Instant;

use chrono::{DateTime, Utc};

/// SQS MessageId: the same for every delivery of a message, hence the ledger's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub String);

/// One delivery's handle, needed to delete the message or change its visibility.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReceiptHandle(pub String);

impl MessageId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for MessageId {
    fn from(id: &str) -> Self {
        Self(id.to_string())
    }
}

/// One received message, with what the pipeline needs to process and acknowledge it.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Stable across redeliveries.
    pub message_id: MessageId,
    /// This delivery.
    pub receipt_handle: ReceiptHandle,
    /// Raw body (may contain PII; never logged).
    pub body: String,
    /// When the producer sent it (SentTimestamp); `create_date` derives from it so a reprocessed
    /// message yields the same row.
    pub sent_at: DateTime<Utc>,
    /// ApproximateReceiveCount: 1 on first delivery.
    pub receive_count: u32,
    /// When this consumer received it: the visibility timeout runs from here.
    pub received: Instant,
}

/// A rejected message on its way to the dead-letter queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forwarded<'a> {
    /// The raw body, as received.
    pub(crate) body: &'a str,
    /// Its MessageId in the source queue.
    pub(crate) message_id: &'a MessageId,
    /// Why it was rejected (a [`crate::event::RejectCode`] text).
    pub(crate) reason_code: &'a str,
}
