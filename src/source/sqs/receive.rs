//! ReceiveMessage: long poll, with the two system attributes the pipeline needs.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::{TimeZone, Utc};

use super::{Envelope, MessageId, ReceiptHandle, SourceError, SqsSource, SQS_BATCH_MAX};

impl SqsSource {
    /// Long-poll for up to `max` (≤ 10) messages, waiting up to `wait` for the first.
    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Envelope>, SourceError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, SQS_BATCH_MAX) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let now = Utc::now();
        let received = Instant::now();
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let attributes = m.attributes.unwrap_or_default();
                let attr = |name: MessageSystemAttributeName| {
                    attributes.get(&name).and_then(|v| v.parse::<i64>().ok())
                };
                Some(Envelope {
                    sent_at: attr(MessageSystemAttributeName::SentTimestamp)
                        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
                        .unwrap_or(now),
                    receive_count: attr(MessageSystemAttributeName::ApproximateReceiveCount)
                        .unwrap_or(1)
                        .clamp(1, u32::MAX as i64) as u32,
                    message_id: MessageId(m.message_id?),
                    receipt_handle: ReceiptHandle(m.receipt_handle?),
                    body: m.body.unwrap_or_default(),
                    received,
                })
            })
            .collect())
    }
}
