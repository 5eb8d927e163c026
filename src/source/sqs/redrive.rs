//! `redrive`: dead letters moved back to the source queue as the messages they were. Each copy
//! carries its original id (`login-etl-source-message-id`) and its first sending time
//! (`login-etl-source-sent-at`); a dead letter that SQS itself moved there (a redrive policy's
//! `maxReceiveCount`) gets them from its own MessageId and SentTimestamp, which SQS keeps in the
//! dead-letter queue. So the consumer deduplicates a copy by its original id (a crash between
//! send and delete duplicates one, never loses one) and dates it, for erasure and `create_date`,
//! by when it was first sent. SQS's own StartMessageMoveTask is not used: it gives every moved
//! message a new id and a new SentTimestamp and adds neither attribute.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};

use super::forward::{deduplication_id, pack, REASON_ATTRIBUTE, SENT_ATTRIBUTE, SOURCE_ATTRIBUTE};
use super::{SourceError, SqsSource, SQS_BATCH_MAX};
use crate::validate::RejectCode;

/// SQS's limit of message attributes per message.
const MAX_ATTRIBUTES: usize = 10;
/// The reason shown for a dead letter that carries none (SQS moved it there itself).
const NO_REASON: &str = "moved by SQS (maxReceiveCount)";
/// The reason shown for a dead letter whose reason is not one login-etl writes.
const OTHER_REASON: &str = "other";

/// What a redrive found or did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// Dead letters by reason code.
    pub by_reason: BTreeMap<String, u64>,
    /// Sent to the source queue and deleted from the dead-letter queue.
    pub moved: u64,
    /// Refused by SQS as the sender's fault (they stay in the dead-letter queue), with why.
    pub refused: Vec<String>,
    /// Sent to the source queue, but SQS failed to delete them from the dead-letter queue (twice):
    /// they come back as duplicates, which the consumer's ledger drops by their original id.
    pub not_deleted: u64,
}

impl SqsSource {
    /// The queue's ARN: the one name of a queue, where URLs vary (host or path style, a trailing
    /// slash, http or https, `localhost` or an address) and still name the same queue.
    pub(crate) async fn arn(&self) -> Result<String, SourceError> {
        let attributes = self.attributes(&[QueueAttributeName::QueueArn]).await?;
        (attributes.get(&QueueAttributeName::QueueArn))
            .filter(|arn| !arn.is_empty())
            .cloned()
            .ok_or_else(|| {
                SourceError::NotSqs(format!(
                    "{} has no QueueArn attribute: check that it is an SQS queue URL",
                    self.queue_url
                ))
            })
    }

    /// Count this (dead-letter) queue's messages by reason (at most `max`), moving nothing. Each
    /// is hidden while counted (for `hold` at most), then made visible again.
    pub async fn census(&self, hold: Duration, max: usize) -> Result<Redriven, SourceError> {
        let mut seen = HashSet::new();
        let mut held = Vec::new();
        let mut report = Redriven::default();
        while seen.len() < max {
            let batch = self.receive_dead_letters(hold).await?;
            let mut new = 0;
            for m in &batch {
                if seen.insert(m.message_id.clone().unwrap_or_default()) {
                    new += 1;
                    *report.by_reason.entry(reason(m)).or_default() += 1;
                }
                held.extend(m.receipt_handle.clone().map(super::ReceiptHandle));
            }
            if new == 0 {
                break;
            }
        }
        // Visible again now, not when `hold` runs out (a receipt already expired is refused).
        for chunk in held.chunks(SQS_BATCH_MAX) {
            (self.batch_call(super::hot::wire::CHANGE_VISIBILITY, chunk, Some(0))).await?;
        }
        Ok(report)
    }

    /// Move every message of this (dead-letter) queue to `to`: send, then delete what was sent.
    /// Each is hidden for `hold` while in hand.
    pub async fn redrive_to(
        &self,
        to: &SqsSource,
        hold: Duration,
    ) -> Result<Redriven, SourceError> {
        let mut report = Redriven::default();
        // Refused, or copied and not deleted: left in the dead-letter queue.
        let mut skip = HashSet::new();
        loop {
            let batch: Vec<Message> = (self.receive_dead_letters(hold).await?.into_iter())
                .filter(|m| !skip.contains(&m.message_id))
                .collect();
            if batch.is_empty() {
                return Ok(report);
            }
            let (sent, refused) = to.send_copies(&batch).await?;
            for (i, why) in refused {
                skip.insert(batch[i].message_id.clone());
                report.refused.push(why);
            }
            let not_deleted = self.delete_copied(&batch, &sent).await?;
            for &i in &not_deleted {
                // Hidden for `hold` only: not copied again in this run if it shows up again.
                skip.insert(batch[i].message_id.clone());
            }
            for &i in sent.iter().filter(|i| !not_deleted.contains(i)) {
                *report.by_reason.entry(reason(&batch[i])).or_default() += 1;
                report.moved += 1;
            }
            report.not_deleted += not_deleted.len() as u64;
        }
    }

    /// Delete the dead letters at `copied` (indices into `batch`), once more for those a
    /// successful DeleteMessageBatch still lists as failed; the indices never deleted. Such a
    /// dead letter comes back later as a duplicate of its copy.
    async fn delete_copied(
        &self,
        batch: &[Message],
        copied: &[usize],
    ) -> Result<Vec<usize>, SourceError> {
        let mut pending = copied.to_vec();
        for attempt in 0..2 {
            if pending.is_empty() {
                break;
            }
            let entries: Vec<DeleteMessageBatchRequestEntry> = (pending.iter())
                .map(|&i| {
                    (DeleteMessageBatchRequestEntry::builder().id(i.to_string()))
                        .receipt_handle(receipt(&batch[i], attempt))
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect();
            let out = (self.client.delete_message_batch())
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.error(e))?;
            let deleted: HashSet<&str> = out.successful.iter().map(|s| s.id.as_str()).collect();
            pending.retain(|i| !deleted.contains(i.to_string().as_str()));
        }
        Ok(pending)
    }

    /// Up to ten messages with every attribute, hidden for `hold`.
    async fn receive_dead_letters(&self, hold: Duration) -> Result<Vec<Message>, SourceError> {
        let out = (self.client.receive_message())
            .queue_url(&self.queue_url)
            .max_number_of_messages(SQS_BATCH_MAX as i32)
            .wait_time_seconds(1)
            .visibility_timeout(hold.as_secs().clamp(1, 43_200) as i32)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Send copies of `messages` to this queue, keeping their identity, in calls packed by size
    /// (ten dead letters can exceed SendMessageBatch's 256 KiB, and then the whole call fails);
    /// the indices sent, and those SQS refused as the sender's fault with why. A failure on SQS's
    /// side fails the call. A copy over 256 KiB goes alone (a queue may take up to 1 MiB).
    async fn send_copies(
        &self,
        messages: &[Message],
    ) -> Result<(Vec<usize>, Vec<(usize, String)>), SourceError> {
        let copies: Vec<(String, HashMap<String, MessageAttributeValue>)> = (messages.iter())
            .map(|m| (m.body.clone().unwrap_or_default(), identity(m)))
            .collect();
        let sizes: Vec<usize> = (copies.iter())
            .map(|(body, attributes)| copy_size(body, attributes))
            .collect();
        let (mut sent, mut refused) = (Vec::new(), Vec::new());
        for call in pack(&sizes) {
            let entries = (call.iter().enumerate())
                .map(|(id, &i)| self.copy_entry(id, &messages[i], &copies[i]))
                .collect();
            let (went, not) = self.send_batch(entries, "a redriven message").await?;
            sent.extend(went.into_iter().map(|id| call[id]));
            refused.extend(not.into_iter().map(|(id, why)| (call[id], why)));
        }
        Ok((sent, refused))
    }

    /// The SendMessageBatch entry (id `id`) of the copy of dead letter `m`.
    fn copy_entry(
        &self,
        id: usize,
        m: &Message,
        (body, attributes): &(String, HashMap<String, MessageAttributeValue>),
    ) -> SendMessageBatchRequestEntry {
        let entry = SendMessageBatchRequestEntry::builder()
            .id(id.to_string())
            .message_body(body)
            .set_message_attributes(Some(attributes.clone()));
        let entry = if self.is_fifo() {
            entry
                .message_group_id("login-etl-redrive")
                // The dead letter's own id: the same when a crashed redrive is retried, new each
                // time it comes back (the original id would be dropped by SQS's 5-minute
                // deduplication, and then deleted here: lost).
                .message_deduplication_id(deduplication_id(
                    m.message_id.as_deref().unwrap_or_default(),
                ))
        } else {
            entry
        };
        entry.build().expect("id and body are set")
    }
}

/// Bytes a copy counts for against SQS's size limits: its body and each attribute's name, type
/// and value, as SQS counts them.
fn copy_size(body: &str, attributes: &HashMap<String, MessageAttributeValue>) -> usize {
    let attribute = |(name, value): (&String, &MessageAttributeValue)| {
        name.len()
            + value.data_type.len()
            + value.string_value.as_ref().map_or(0, String::len)
            + value.binary_value.as_ref().map_or(0, |b| b.as_ref().len())
    };
    body.len() + attributes.iter().map(attribute).sum::<usize>()
}

/// The receipt handle to delete `m` with (`attempt` counts from 0; a test hook spoils it).
#[cfg_attr(not(feature = "test-hooks"), allow(unused_variables))]
fn receipt(m: &Message, attempt: usize) -> String {
    let receipt = m.receipt_handle.clone().unwrap_or_default();
    #[cfg(feature = "test-hooks")]
    let receipt = crate::test_hooks::redrive_receipt(attempt, receipt);
    receipt
}

/// Why a dead letter is there: a reason code login-etl writes, or [`OTHER_REASON`]. Anyone who
/// can send to the queue can set the attribute, so its text (terminal escapes, PII) is never shown.
fn reason(m: &Message) -> String {
    let Some(text) = string_attribute(m, REASON_ATTRIBUTE) else {
        return NO_REASON.to_string();
    };
    (RejectCode::ALL.iter())
        .map(|code| code.as_str())
        .find(|code| *code == text)
        .unwrap_or(OTHER_REASON)
        .to_string()
}

fn string_attribute(m: &Message, name: &str) -> Option<String> {
    (m.message_attributes
        .as_ref()?
        .get(name)?
        .string_value
        .clone())
    .filter(|v| !v.is_empty())
}

/// A dead letter's message attributes with its identity added where missing: its original id and
/// its first sending time (SQS's SentTimestamp in the dead-letter queue, which SQS keeps when it
/// moves a message there itself). The identity comes first: within SQS's ten, producer
/// attributes (which login-etl never reads) give way to it, last names first, so a copy always
/// lands once and is dated by its first sending.
pub(crate) fn identity(m: &Message) -> HashMap<String, MessageAttributeValue> {
    let mut attributes = m.message_attributes.clone().unwrap_or_default();
    let sent = (m.attributes.as_ref())
        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
        .cloned();
    for (name, value) in [
        (SOURCE_ATTRIBUTE, m.message_id.clone()),
        (SENT_ATTRIBUTE, sent),
    ] {
        if string_attribute(m, name).is_some() {
            continue;
        }
        let Some(value) = value else { continue };
        while attributes.len() >= MAX_ATTRIBUTES {
            let ours = [SOURCE_ATTRIBUTE, SENT_ATTRIBUTE, REASON_ATTRIBUTE];
            let Some(last) = (attributes.keys())
                .filter(|k| !ours.contains(&k.as_str()))
                .max()
                .cloned()
            else {
                break;
            };
            attributes.remove(&last);
        }
        attributes.insert(name.to_string(), super::batch::text_attribute(&value));
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_letter(attributes: &[(&str, &str)]) -> Message {
        let mut m = Message::builder()
            .message_id("dlq-id")
            .body("{}")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000000");
        for (name, value) in attributes {
            m = m.message_attributes(*name, super::super::batch::text_attribute(value));
        }
        m.build()
    }

    fn value(attributes: &HashMap<String, MessageAttributeValue>, name: &str) -> String {
        attributes[name].string_value.clone().unwrap()
    }

    #[test]
    fn a_dead_letter_sqs_moved_takes_its_own_id_and_time() {
        let copy = identity(&dead_letter(&[("producer", "x")]));
        assert_eq!(value(&copy, SOURCE_ATTRIBUTE), "dlq-id");
        assert_eq!(value(&copy, SENT_ATTRIBUTE), "1700000000000");
        assert_eq!(value(&copy, "producer"), "x");
        assert_eq!(reason(&dead_letter(&[])), NO_REASON);
    }

    #[test]
    fn a_forwarded_dead_letter_keeps_the_identity_it_carries() {
        let m = dead_letter(&[
            (SOURCE_ATTRIBUTE, "orig#2"),
            (SENT_ATTRIBUTE, "1600000000000"),
            (REASON_ATTRIBUTE, "invalid_fields"),
        ]);
        let copy = identity(&m);
        assert_eq!(value(&copy, SOURCE_ATTRIBUTE), "orig#2");
        assert_eq!(value(&copy, SENT_ATTRIBUTE), "1600000000000");
        assert_eq!(reason(&m), "invalid_fields");
    }

    #[test]
    fn the_identity_always_fits_beside_the_producers_attributes() {
        for n in 0..=10 {
            let names: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
            let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
            let copy = identity(&dead_letter(&pairs));
            assert!(copy.len() <= MAX_ATTRIBUTES, "{n}");
            assert_eq!(value(&copy, SOURCE_ATTRIBUTE), "dlq-id", "{n}");
            assert_eq!(value(&copy, SENT_ATTRIBUTE), "1700000000000", "{n}");
        }
    }

    #[test]
    fn a_reason_is_a_known_code_or_other_never_free_text() {
        for code in RejectCode::ALL {
            assert_eq!(
                reason(&dead_letter(&[(REASON_ATTRIBUTE, code.as_str())])),
                code.as_str()
            );
        }
        for free in [
            "\u{1b}[31mjane@example.com",
            "invalid_fields ",
            "x\ny",
            "INVALID_JSON",
        ] {
            assert_eq!(
                reason(&dead_letter(&[(REASON_ATTRIBUTE, free)])),
                OTHER_REASON,
                "{free:?}"
            );
        }
    }

    #[test]
    fn a_copy_counts_its_body_and_every_attribute() {
        let copy = identity(&dead_letter(&[("producer", "x")]));
        let sent = SENT_ATTRIBUTE.len() + 6 + 13;
        let source = SOURCE_ATTRIBUTE.len() + 6 + 6;
        assert_eq!(copy_size("abc", &copy), 3 + (8 + 6 + 1) + source + sent);
    }
}
