//! What a received message is to the rest of the pipeline, and the two SQS identifiers that must
//! not be confused: the message id (stable across deliveries: the deduplication key) and the
//! receipt handle (one delivery: what deletes it).

use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::message::Message;
pub use crate::message::MessageId;

/// One delivery's handle, needed to delete the message or change its visibility.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReceiptHandle(pub String);

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
    /// A dead letter sent again with its original id but not its first-sending time
    /// ([`Message::undated_copy`]).
    pub undated_copy: bool,
    /// Set for a chunk of an S3 object that a notification named ([`crate::source::s3`]).
    pub chunk_of: Option<ChunkOf>,
    /// When this consumer received it: the visibility timeout runs from here.
    pub received: Instant,
}

impl<'a> From<&'a Envelope> for Message<'a> {
    fn from(envelope: &'a Envelope) -> Self {
        Message {
            id: &envelope.message_id,
            body: &envelope.body,
            sent_at: envelope.sent_at,
            receive_count: envelope.receive_count,
            undated_copy: envelope.undated_copy,
        }
    }
}

/// What makes an envelope a chunk of an S3 object: its notification's delivery, deleted once every
/// chunk of it committed (never by a chunk alone), and, for a chunk that stands for what could
/// not be read (a line too long, an object gone), the reason it is quarantined with.
#[derive(Debug, Clone)]
pub struct ChunkOf {
    /// The notification's delivery (its receipt handle is also the chunk's).
    pub notification: ReceiptHandle,
    /// Quarantine with this reason instead of reading the body.
    pub refusal: Option<crate::validate::Rejection>,
    /// The object's last chunk: its commit marks the object read.
    pub last: bool,
}

/// A rejected message on its way to the dead-letter queue.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded<'a> {
    /// The raw body, as received.
    pub body: &'a str,
    /// Its MessageId in the source queue.
    pub message_id: &'a MessageId,
    /// Why it was rejected (a [`crate::validate::RejectCode`] text).
    pub reason_code: &'a str,
    /// When it was first sent (its envelope's `sent_at`): a redriven copy gets a new
    /// SentTimestamp, and this keeps the original.
    pub sent_at: DateTime<Utc>,
}
