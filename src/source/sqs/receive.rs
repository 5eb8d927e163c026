//! ReceiveMessage: long poll, with the two system attributes the pipeline needs and the one
//! message attribute that makes a redriven dead letter the message it was (on the hot path).

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};

use super::hot::wire::{ReceiveInput, ReceiveOutput, Received};
use super::{Envelope, MessageId, ReceiptHandle, SourceError, SqsSource, SQS_BATCH_MAX};
use crate::message::MAX_DEAD_LETTER_AGE;

impl SqsSource {
    /// Long-poll for up to `max` (≤ 10) messages, waiting up to `wait` for the first.
    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Envelope>, SourceError> {
        let input = ReceiveInput {
            queue_url: &self.queue_url,
            max_number_of_messages: max.clamp(1, SQS_BATCH_MAX) as u32,
            wait_time_seconds: wait.as_secs().min(20) as u32,
            message_system_attribute_names: ["SentTimestamp", "ApproximateReceiveCount"],
            message_attribute_names: [
                super::forward::SOURCE_ATTRIBUTE,
                super::forward::SENT_ATTRIBUTE,
            ],
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

/// Longest original id taken from a message attribute (SQS's are 36 characters; `#<element>` adds
/// a few): a longer one is not login-etl's, and the message keeps its own id.
const MAX_SOURCE_ID: usize = 128;

/// A received message as the pipeline sees it; `None` without an id or a receipt handle. Its id is
/// the original one a dead letter carries (`login-etl-source-message-id`), so a redriven copy is
/// deduplicated and its quarantine entry found; otherwise SQS's MessageId. It was sent at the
/// earlier of its SentTimestamp and the original time a dead letter carries
/// (`login-etl-source-sent-at`): a redrive makes a new SentTimestamp, never a new login.
fn envelope(m: Received, now: chrono::DateTime<Utc>, received: Instant) -> Option<Envelope> {
    let attribute = |a: Option<super::hot::wire::StringAttribute>| a.and_then(|a| a.string_value);
    let (original, first_sent) = match m.message_attributes {
        Some(a) => (attribute(a.source_message_id), attribute(a.source_sent_at)),
        None => (None, None),
    };
    let original = original.filter(|id| !id.is_empty() && id.len() <= MAX_SOURCE_ID);
    let attributes = m.attributes.unwrap_or_default();
    let time = |v: Option<String>| {
        v.and_then(|v| v.parse::<i64>().ok())
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
    };
    let sent_at = time(attributes.sent_timestamp).unwrap_or(now);
    let number = |v: Option<String>| v.and_then(|v| v.parse::<i64>().ok());
    // Honoured only within what a dead letter can really be (a DLQ's and a queue's 14-day
    // retention each): a forged time outside it, which PostgreSQL might not even store, is
    // ignored.
    let first_sent = time(first_sent).filter(|first| *first >= sent_at - MAX_DEAD_LETTER_AGE);
    Some(Envelope {
        sent_at: first_sent.map_or(sent_at, |first| first.min(sent_at)),
        undated_copy: original.is_some() && first_sent.is_none(),
        chunk_of: None,
        receive_count: number(attributes.approximate_receive_count)
            .unwrap_or(1)
            .clamp(1, u32::MAX as i64) as u32,
        message_id: MessageId(original.or(m.message_id)?),
        receipt_handle: ReceiptHandle(m.receipt_handle?),
        body: m.body.unwrap_or_default(),
        received,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reply(attributes: &str) -> Received {
        let json =
            format!(r#"{{"MessageId":"sqs-id","ReceiptHandle":"r","Body":"{{}}"{attributes}}}"#);
        serde_json::from_str(&json).unwrap()
    }

    proptest! {
        #[test]
        fn a_dead_letter_is_known_by_its_original_id(original in "[0-9a-f-]{1,36}(#[0-9]{1,3})?") {
            let name = super::super::forward::SOURCE_ATTRIBUTE;
            let m = reply(&format!(
                r#","MessageAttributes":{{"other":{{"StringValue":"x","DataType":"String"}},"{name}":{{"StringValue":"{original}","DataType":"String"}}}}"#
            ));
            let e = envelope(m, Utc::now(), Instant::now()).unwrap();
            prop_assert_eq!(e.message_id.as_str(), original.as_str());
        }
    }

    proptest! {
        /// A redriven dead letter is as old as its first sending, whatever its new
        /// SentTimestamp; an attribute that is not a time, or a later one, changes nothing.
        #[test]
        fn a_dead_letter_is_as_old_as_its_first_sending(
            sent in 1_600_000_000_000_i64..1_900_000_000_000,
            first in prop_oneof![
                (1_500_000_000_000_i64..2_000_000_000_000).prop_map(|ms| ms.to_string()),
                "[^0-9]{0,12}",
                Just("99999999999999999999".to_string()),
            ],
        ) {
            let name = super::super::forward::SENT_ATTRIBUTE;
            let m = reply(&format!(
                r#","Attributes":{{"SentTimestamp":"{sent}"}},"MessageAttributes":{{"{name}":{{"StringValue":{},"DataType":"String"}}}}"#,
                serde_json::Value::String(first.clone())
            ));
            let e = envelope(m, Utc::now(), Instant::now()).unwrap();
            let oldest = sent - MAX_DEAD_LETTER_AGE.num_milliseconds();
            let expected = first.parse::<i64>().ok().filter(|f| *f < sent && *f >= oldest).unwrap_or(sent);
            prop_assert_eq!(e.sent_at.timestamp_millis(), expected);
        }
    }

    #[test]
    fn a_message_without_one_or_with_an_unlikely_one_keeps_its_own() {
        let own = |m| envelope(m, Utc::now(), Instant::now()).unwrap().message_id;
        assert_eq!(own(reply("")).as_str(), "sqs-id");
        let name = super::super::forward::SOURCE_ATTRIBUTE;
        let long = "x".repeat(MAX_SOURCE_ID + 1);
        for value in ["", long.as_str()] {
            let m = reply(&format!(
                r#","MessageAttributes":{{"{name}":{{"StringValue":"{value}","DataType":"String"}}}}"#
            ));
            assert_eq!(own(m).as_str(), "sqs-id");
        }
    }

    /// A copy with its original id but no first-sending time it can be dated by is undated: an
    /// erasure takes it for as old as a dead letter can be. One without an id, or with a time
    /// that is honoured, is not.
    #[test]
    fn a_copy_without_a_first_sending_time_is_undated() {
        let (id, sent) = (
            super::super::forward::SOURCE_ATTRIBUTE,
            super::super::forward::SENT_ATTRIBUTE,
        );
        let attribute = |name: &str, value: &str| {
            format!(r#""{name}":{{"StringValue":"{value}","DataType":"String"}}"#)
        };
        let with = |attributes: &[String]| {
            let m = reply(&format!(
                r#","Attributes":{{"SentTimestamp":"1700000000000"}},"MessageAttributes":{{{}}}"#,
                attributes.join(",")
            ));
            envelope(m, Utc::now(), Instant::now())
                .unwrap()
                .undated_copy
        };
        assert!(with(&[attribute(id, "orig-1")]));
        assert!(
            with(&[attribute(id, "orig-1"), attribute(sent, "1")]),
            "a forged time"
        );
        assert!(!with(&[
            attribute(id, "orig-1"),
            attribute(sent, "1699999999000")
        ]));
        assert!(!with(&[attribute(sent, "1699999999000")]));
        assert!(!with(&[]));
    }
}
