//! Dead-letter forwarding within SendMessageBatch's limits: at most ten entries and 256 KiB of
//! payload (bodies and message attributes) per call. A message too large to forward with its
//! attributes, or one SQS refuses as the sender's fault, is reported back (it stays in
//! quarantine) instead of being retried forever. A FIFO dead-letter queue gets a message group
//! and the source message id as deduplication id, so a re-forward after a crash is dropped by SQS.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use super::batch::{in_parallel, text_attribute};
use super::{Forwarded, MessageId, SourceError, SqsSource, SQS_BATCH_MAX};

/// SQS's limit on one message, and on one SendMessageBatch call: 256 KiB.
pub(crate) const MAX_PAYLOAD: usize = 262_144;
/// The message attributes every forwarded message carries; receive reads the last two, so a
/// redriven dead letter is the message it was, not a new one: its original id, and when it was
/// first sent (milliseconds since the epoch; a redrive gives it a new SentTimestamp, and an
/// erasure or `create_date` must not take that for its age).
pub(crate) const REASON_ATTRIBUTE: &str = "login-etl-reason-code";
pub(crate) const SOURCE_ATTRIBUTE: &str = "login-etl-source-message-id";
pub(crate) const SENT_ATTRIBUTE: &str = "login-etl-source-sent-at";
/// The message group of a FIFO dead-letter queue.
const FIFO_GROUP: &str = "login-etl-quarantine";

/// What a forward did.
#[derive(Debug, Default)]
pub struct ForwardReport {
    /// Messages now in the dead-letter queue.
    pub forwarded: usize,
    /// Messages that cannot be forwarded, and why (they stay in quarantine).
    pub not_forwarded: Vec<(MessageId, String)>,
}

/// Bytes a message counts for against the 256 KiB limits: body and attributes (name, type and
/// value each), as SQS counts them.
pub(crate) fn payload_size(message: &Forwarded<'_>) -> usize {
    let attribute = |name: &str, value: &str| name.len() + "String".len() + value.len();
    message.body.len()
        + attribute(REASON_ATTRIBUTE, message.reason_code)
        + attribute(SOURCE_ATTRIBUTE, message.message_id.as_str())
        + attribute(SENT_ATTRIBUTE, &sent_millis(message))
}

/// The value of [`SENT_ATTRIBUTE`].
fn sent_millis(message: &Forwarded<'_>) -> String {
    message.sent_at.timestamp_millis().to_string()
}

/// Group messages of these sizes (each at most [`MAX_PAYLOAD`]) into calls of at most ten and
/// [`MAX_PAYLOAD`] bytes, in order; indices into `sizes`.
pub(crate) fn pack(sizes: &[usize]) -> Vec<Vec<usize>> {
    let mut calls: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        match calls.last_mut() {
            Some(call) if call.len() < SQS_BATCH_MAX && bytes + size <= MAX_PAYLOAD => {
                call.push(i);
                bytes += size;
            }
            _ => {
                calls.push(vec![i]);
                bytes = size;
            }
        }
    }
    calls
}

/// A FIFO deduplication id from a message id: at most 128 of the characters SQS allows.
pub(super) fn deduplication_id(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(128)
        .collect()
}

impl SqsSource {
    /// Forward rejected messages, raw, to this (dead-letter) queue, tagged with why and where they
    /// came from, so they can be redriven after a fix.
    pub(crate) async fn forward(
        &self,
        messages: &[Forwarded<'_>],
    ) -> Result<ForwardReport, SourceError> {
        let mut report = ForwardReport::default();
        let mut fitting = Vec::new();
        for message in messages {
            let size = payload_size(message);
            if size > MAX_PAYLOAD {
                report.not_forwarded.push((
                    message.message_id.clone(),
                    format!(
                        "{size} bytes with its attributes, more than SQS takes ({MAX_PAYLOAD})"
                    ),
                ));
            } else {
                fitting.push((message, size));
            }
        }
        let sizes: Vec<usize> = fitting.iter().map(|(_, size)| *size).collect();
        let calls: Vec<_> = pack(&sizes)
            .into_iter()
            .map(|call| {
                let chunk: Vec<&Forwarded<'_>> = call.iter().map(|&i| fitting[i].0).collect();
                self.forward_call(chunk)
            })
            .collect();
        for (forwarded, refused) in in_parallel(calls).await? {
            report.forwarded += forwarded;
            report.not_forwarded.extend(refused);
        }
        Ok(report)
    }

    /// One SendMessageBatch call: how many went, and those SQS refused as the sender's fault.
    /// A failure on SQS's side fails the call, to be retried.
    async fn forward_call(
        &self,
        chunk: Vec<&Forwarded<'_>>,
    ) -> Result<(usize, Vec<(MessageId, String)>), SourceError> {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.body)
                    .message_attributes(REASON_ATTRIBUTE, text_attribute(m.reason_code))
                    .message_attributes(SOURCE_ATTRIBUTE, text_attribute(m.message_id.as_str()))
                    .message_attributes(SENT_ATTRIBUTE, text_attribute(&sent_millis(m)));
                let entry = if self.is_fifo() {
                    entry
                        .message_group_id(FIFO_GROUP)
                        .message_deduplication_id(deduplication_id(m.message_id.as_str()))
                } else {
                    entry
                };
                entry.build().expect("id and body are set")
            })
            .collect();
        let (sent, refused) = self.send_batch(entries, "a dead letter").await?;
        let refused = (refused.into_iter())
            .filter_map(|(i, why)| Some((chunk.get(i)?.message_id.clone(), why)))
            .collect();
        Ok((sent.len(), refused))
    }

    /// One SendMessageBatch call of entries whose ids are their indices: the indices sent, and
    /// those SQS refused as the sender's fault with why. A failure on SQS's side fails the call
    /// (to be retried); `what` names an entry in that error.
    pub(super) async fn send_batch(
        &self,
        entries: Vec<SendMessageBatchRequestEntry>,
        what: &str,
    ) -> Result<(Vec<usize>, Vec<(usize, String)>), SourceError> {
        let count = entries.len();
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        if let Some(failed) = out.failed.iter().find(|f| !f.sender_fault) {
            return Err(SourceError::Transient(format!(
                "SQS failed to take {what} ({}: {})",
                failed.code,
                failed.message.as_deref().unwrap_or("no message")
            )));
        }
        let index = |id: &str| id.parse::<usize>().ok().filter(|&i| i < count);
        let sent = out.successful.iter().filter_map(|s| index(&s.id)).collect();
        let refused = (out.failed.iter())
            .filter_map(|f| Some((index(&f.id)?, format!("SQS refused it ({})", f.code))))
            .collect();
        Ok((sent, refused))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn calls_stay_within_ten_entries_and_256_kib_and_keep_every_message_once(
            sizes in prop::collection::vec(1usize..=MAX_PAYLOAD, 0..60)
        ) {
            let calls = pack(&sizes);
            let flat: Vec<usize> = calls.iter().flatten().copied().collect();
            prop_assert_eq!(flat, (0..sizes.len()).collect::<Vec<_>>());
            for call in &calls {
                prop_assert!(!call.is_empty() && call.len() <= SQS_BATCH_MAX);
                prop_assert!(call.iter().map(|&i| sizes[i]).sum::<usize>() <= MAX_PAYLOAD);
            }
        }
    }

    #[test]
    fn the_size_counts_the_attributes() {
        let id = MessageId("m-1".into());
        let message = Forwarded {
            body: "abc",
            message_id: &id,
            reason_code: "invalid_json",
            sent_at: chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
        };
        let sent = 24 + 6 + 13;
        assert_eq!(
            payload_size(&message),
            3 + (21 + 6 + 12) + (27 + 6 + 3) + sent
        );
    }
}
