//! The batch calls: DeleteMessageBatch, ChangeMessageVisibilityBatch (both on the hot path),
//! SendMessageBatch (the SDK). Each takes any number of entries, splits them into calls of ten and
//! runs up to eight calls at once.

use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use futures::stream::{self, StreamExt, TryStreamExt};

use super::hot::wire;
use super::{MessageId, ReceiptHandle, SourceError, SqsSource, SQS_BATCH_MAX};

/// Run batch calls (one per chunk of ten), eight at a time, results in call order.
///
/// The futures are built into a `Vec` by the caller first: a lazy `map(|chunk| ..)` inside the
/// stream would make the resulting future not `Send` (rust-lang/rust#64552), and callers spawn it.
pub(super) async fn in_parallel<T, F>(calls: Vec<F>) -> Result<Vec<T>, SourceError>
where
    F: std::future::Future<Output = Result<T, SourceError>>,
{
    stream::iter(calls).buffered(8).try_collect().await
}

pub(super) fn text_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

impl SqsSource {
    /// Delete messages by receipt handle. Returns how many SQS reported as failed (they will be
    /// redelivered and skipped by the ledger).
    pub async fn delete(&self, receipts: &[ReceiptHandle]) -> Result<usize, SourceError> {
        let calls: Vec<_> = receipts
            .chunks(SQS_BATCH_MAX)
            .map(|chunk| self.delete_chunk(chunk))
            .collect();
        Ok(in_parallel(calls).await?.into_iter().sum())
    }

    async fn delete_chunk(&self, chunk: &[ReceiptHandle]) -> Result<usize, SourceError> {
        self.batch_call(wire::DELETE, chunk, None).await
    }

    /// Keep messages hidden for another `timeout` from now, so a batch that takes long to commit
    /// is not handed to another consumer meanwhile. Returns how many SQS refused (typically:
    /// already deleted or expired).
    pub(crate) async fn extend_visibility(
        &self,
        receipts: &[ReceiptHandle],
        timeout: Duration,
    ) -> Result<usize, SourceError> {
        let calls: Vec<_> = receipts
            .chunks(SQS_BATCH_MAX)
            .map(|chunk| self.extend_chunk(chunk, timeout))
            .collect();
        Ok(in_parallel(calls).await?.into_iter().sum())
    }

    async fn extend_chunk(
        &self,
        chunk: &[ReceiptHandle],
        timeout: Duration,
    ) -> Result<usize, SourceError> {
        // Zero hands the messages back at once; any other timeout is at least a second (SQS's unit).
        let seconds = match timeout.is_zero() {
            true => 0,
            false => timeout.as_secs().clamp(1, 12 * 60 * 60) as u32,
        };
        self.batch_call(wire::CHANGE_VISIBILITY, chunk, Some(seconds))
            .await
    }

    /// One DeleteMessageBatch or ChangeMessageVisibilityBatch call (on the hot path); how many
    /// entries SQS refused.
    pub(super) async fn batch_call(
        &self,
        target: &'static str,
        chunk: &[ReceiptHandle],
        visibility_timeout: Option<u32>,
    ) -> Result<usize, SourceError> {
        let input = wire::BatchInput {
            queue_url: &self.queue_url,
            entries: wire::entries(chunk.iter().map(|r| r.0.as_str()), visibility_timeout),
        };
        let output: wire::BatchOutput = self
            .hot
            .call(target, &input)
            .await
            .map_err(|f| self.failure(f))?;
        Ok(output.failed())
    }

    /// Send bodies. Returns the SQS MessageIds in input order; fails if SQS rejects any entry.
    pub async fn send(&self, bodies: &[String]) -> Result<Vec<MessageId>, SourceError> {
        let calls: Vec<_> = bodies
            .chunks(SQS_BATCH_MAX)
            .map(|chunk| {
                let entries = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, body)| {
                        let entry = SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(body);
                        // A FIFO queue needs a group and a deduplication id per message.
                        let entry = if self.is_fifo() {
                            entry
                                .message_group_id("login-etl")
                                .message_deduplication_id(uuid::Uuid::new_v4().to_string())
                        } else {
                            entry
                        };
                        entry.build().expect("id and body are set")
                    })
                    .collect();
                self.send_entries(entries)
            })
            .collect();
        Ok(in_parallel(calls).await?.into_iter().flatten().collect())
    }

    /// Whether this is a FIFO queue (its URL ends in `.fifo`, as SQS requires of the name).
    pub(crate) fn is_fifo(&self) -> bool {
        self.queue_url.ends_with(".fifo")
    }

    /// One SendMessageBatch call; message ids in entry order. Fails if SQS rejects any entry.
    async fn send_entries(
        &self,
        entries: Vec<SendMessageBatchRequestEntry>,
    ) -> Result<Vec<MessageId>, SourceError> {
        let count = entries.len();
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        if let Some(failed) = out.failed.first() {
            return Err(SourceError::Transient(format!(
                "SQS rejected {} of {count} messages in a batch ({}: {})",
                out.failed.len(),
                failed.code,
                failed.message.as_deref().unwrap_or("no message")
            )));
        }
        let mut sent = out.successful;
        sent.sort_by_key(|entry| entry.id.parse::<usize>().unwrap_or(usize::MAX));
        Ok(sent
            .into_iter()
            .map(|entry| MessageId(entry.message_id))
            .collect())
    }
}
