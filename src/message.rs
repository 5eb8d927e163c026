//! What a message is to the pipeline's middle and to the sink, whatever source it came from: the
//! id that deduplicates it, a borrowed view of its content, and what it becomes ([`Outcome`]).
//! Both `source` (which makes messages) and `sink` (which stores outcomes) depend on this module;
//! it depends on neither.

use chrono::{DateTime, NaiveDate, Utc};

use crate::mask::MaskedLogin;
use crate::validate::Rejection;

/// The source's id of a message (SQS MessageId): the same for every delivery, hence the
/// ledger's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub String);

impl MessageId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of login `i` of this message forwarded alone as a dead letter: `<id>#<i>`.
    pub fn of_element(&self, i: u32) -> MessageId {
        MessageId(format!("{}#{i}", self.0))
    }

    /// The quarantine entry (message id, element; -1: the whole message) an outcome of this
    /// message stands for. A redriven dead letter of one login, `<id>#<i>`, stands for element
    /// `i` of `<id>`, so its retries update that entry instead of adding one.
    pub fn entry(&self, element: Option<u32>) -> (&str, i32) {
        let index = |i: u32| i32::try_from(i).unwrap_or(i32::MAX);
        match element {
            Some(i) => (&self.0, index(i)),
            None => match self.0.rsplit_once('#') {
                Some((id, i)) if !id.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) => {
                    match i.parse::<u32>() {
                        Ok(i) => (id, index(i)),
                        Err(_) => (&self.0, -1),
                    }
                }
                _ => (&self.0, -1),
            },
        }
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

/// One received message as transform sees it: no receipt, no queue, nothing of the source.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Stable across redeliveries.
    pub id: &'a MessageId,
    /// Raw body (may contain PII; never logged).
    pub body: &'a str,
    /// When the producer sent it; `create_date` derives from it.
    pub sent_at: DateTime<Utc>,
    /// Deliveries so far (1 on the first).
    pub receive_count: u32,
    /// A dead letter sent again with its original id but without its first-sending time (a copy
    /// re-sent by hand): its logins may be as old as a dead letter can be.
    pub undated_copy: bool,
}

/// The oldest a dead letter's logins can be: a dead-letter queue's and a source queue's longest
/// retention (14 days each).
pub const MAX_DEAD_LETTER_AGE: chrono::TimeDelta = chrono::TimeDelta::days(28);

impl Message<'_> {
    /// The earliest the queue's side says the message existed, for erasures: its sending time,
    /// or for an undated copy the oldest a dead letter can be (an erasure since then may have been
    /// of its logins' subject, and nothing tells it was not).
    pub fn existed_by(&self) -> DateTime<Utc> {
        match self.undated_copy {
            true => self.sent_at - MAX_DEAD_LETTER_AGE,
            false => self.sent_at,
        }
    }
}

/// What one login of a message becomes (a message of several logins has one per login). Carries
/// the message id so the sink can deduplicate redeliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// SQS MessageId.
    pub message_id: MessageId,
    /// Row or quarantine entry.
    pub kind: OutcomeKind,
    /// Which login of a JSON array or NDJSON body (from 0); `None` for a body of one login.
    pub element: Option<u32>,
    /// What the login was wrapped in (for the metrics).
    pub envelope: crate::envelope::EnvelopeKind,
    /// Whether it arrived as base64 of gzip.
    pub compressed: bool,
    /// Top-level fields of a valid login nobody asked for, by name (`other` for a name that could
    /// be a value), for the metrics.
    pub unknown_fields: Vec<String>,
    /// Of the last chunk of an S3 object: its commit marks the object read (`s3_objects`).
    pub ends_object: bool,
}

/// The two destinations of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeKind {
    /// A masked row for `user_logins`.
    Row {
        /// The masked event.
        login: MaskedLogin,
        /// UTC date of the message's SentTimestamp: stable across reprocessing.
        create_date: NaiveDate,
        /// When the login was sent: its envelope's timestamp, else the SQS SentTimestamp.
        sent_at: DateTime<Utc>,
        /// The earliest the queue's side says it existed ([`Message::existed_by`]). The
        /// envelope's time is the producer's word and may run ahead of it, so an erasure compares
        /// the earlier of the two.
        existed_by: DateTime<Utc>,
        /// With `--keep-extra-fields`: the login's unknown top-level fields, scrubbed fail-closed
        /// like a quarantine body ([`crate::mask::Masker::extra_fields`]).
        extra_fields: Option<serde_json::Value>,
    },
    /// An entry for `quarantined_messages`.
    Quarantine(QuarantineRecord),
}

/// A rejected message, safe to store: reason without values, body with PII masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRecord {
    /// Why it was rejected.
    pub rejection: Rejection,
    /// When this consumer received it.
    pub received_at: DateTime<Utc>,
    /// When the producer sent it.
    pub sent_at: DateTime<Utc>,
    /// The earliest the queue's side says it existed ([`Message::existed_by`]), for erasures.
    pub existed_by: DateTime<Utc>,
    /// SQS ApproximateReceiveCount at the time.
    pub receive_count: u32,
    /// Size of the raw body in bytes.
    pub body_bytes: usize,
    /// The body scrubbed fail-closed ([`Masker::scrub_body`]): shape and known non-PII fields
    /// kept, everything else masked or fingerprinted; never a raw value.
    pub body_masked: String,
    /// The body's `user_id`, so that erasure finds the entry without reading bodies.
    pub user_id: Option<String>,
    /// Every user id the stored body holds, at any depth (a message of several logins quarantined
    /// whole holds several), as stored: erasure finds every entry that names a user.
    pub user_ids: Vec<String>,
    /// The key the body's masks and fingerprints were made with (`None`: unkeyed).
    pub key_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_dead_letter_of_one_login_stands_for_that_login_of_its_message(
            id in "[0-9a-f-]{1,40}", i in 0u32..=i32::MAX as u32, element in proptest::option::of(0u32..1000)
        ) {
            let original = MessageId(id.clone());
            let dead_letter = original.of_element(i);
            prop_assert_eq!(dead_letter.entry(None), (id.as_str(), i as i32));
            prop_assert_eq!(original.entry(None), (id.as_str(), -1));
            let expected = element.map_or(-1, |e| e as i32);
            prop_assert_eq!(original.entry(element), (id.as_str(), expected));
        }

        #[test]
        fn ids_not_of_that_form_stand_for_themselves(id in "[^#]*(#[^0-9]*)?") {
            let message = MessageId(id.clone());
            prop_assert_eq!(message.entry(None), (id.as_str(), -1));
        }
    }
}
