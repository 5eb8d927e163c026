//! ReceiveMessage: long poll, with the two system attributes the pipeline needs (on the hot path).

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};

use super::hot::wire::{ReceiveInput, ReceiveOutput, Received};
use super::{Envelope, MessageId, ReceiptHandle, SourceError, SqsSource, SQS_BATCH_MAX};

impl SqsSource {
    /// Long-poll for up to `max` (≤ 10) messages, waiting up to `wait` for the first.
    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Envelope>, SourceError> {
        let input = ReceiveInput {
            queue_url: &self.queue_url,
            max_number_of_messages: max.clamp(1, SQS_BATCH_MAX) as u32,
            wait_time_seconds: wait.as_secs().min(20) as u32,
            message_system_attribute_names: ["SentTimestamp", "ApproximateReceiveCount"],
        };
        let output: ReceiveOutput = self
            .hot
            .call(super::hot::wire::RECEIVE, &input)
            .await
            .map_err(|f| self.failure(f))?;
        let now = Utc::now();
        let received = Instant::now();
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| envelope(m, now, received))
            .collect())
    }
}

/// A received message as the pipeline sees it; `None` without an id or a receipt handle.
fn envelope(m: Received, now: chrono::DateTime<Utc>, received: Instant) -> Option<Envelope> {
    let attributes = m.attributes.unwrap_or_default();
    let number = |v: Option<String>| v.and_then(|v| v.parse::<i64>().ok());
    Some(Envelope {
        sent_at: number(attributes.sent_timestamp)
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .unwrap_or(now),
        receive_count: number(attributes.approximate_receive_count)
            .unwrap_or(1)
            .clamp(1, u32::MAX as i64) as u32,
        message_id: MessageId(m.message_id?),
        receipt_handle: ReceiptHandle(m.receipt_handle?),
        body: m.body.unwrap_or_default(),
        received,
    })
}
