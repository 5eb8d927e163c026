//! The JSON of the three hot calls (AWS JSON 1.0, as aws-sdk-sqs writes and reads it), and SQS's
//! error replies read the way the SDK reads them. Nothing here quotes a reply body: a failure
//! says a code, SQS's own message (escaped, capped) and the HTTP status.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::aws::{foreign_protocol, SdkFailure};

pub(crate) const RECEIVE: &str = "AmazonSQS.ReceiveMessage";
pub(crate) const DELETE: &str = "AmazonSQS.DeleteMessageBatch";
pub(crate) const CHANGE_VISIBILITY: &str = "AmazonSQS.ChangeMessageVisibilityBatch";

/// Batch entry ids: the entry's index in its call (a call has at most ten entries).
const IDS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// How much of SQS's error message a failure keeps.
const MESSAGE_CAP: usize = 200;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ReceiveInput<'a> {
    pub(crate) queue_url: &'a str,
    pub(crate) max_number_of_messages: u32,
    pub(crate) wait_time_seconds: u32,
    pub(crate) message_system_attribute_names: [&'static str; 2],
    /// Only the message attributes that carry a dead letter's original id and sending time.
    pub(crate) message_attribute_names: [&'static str; 2],
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ReceiveOutput {
    #[serde(default)]
    pub(crate) messages: Option<Vec<Received>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Received {
    pub(crate) message_id: Option<String>,
    pub(crate) receipt_handle: Option<String>,
    pub(crate) body: Option<String>,
    #[serde(default)]
    pub(crate) attributes: Option<SystemAttributes>,
    #[serde(default)]
    pub(crate) message_attributes: Option<MessageAttributes>,
}

/// The message attributes asked for: a dead letter's id in its source queue, and when it was
/// first sent there.
#[derive(Deserialize, Default)]
pub(crate) struct MessageAttributes {
    #[serde(rename = "login-etl-source-message-id")]
    pub(crate) source_message_id: Option<StringAttribute>,
    #[serde(rename = "login-etl-source-sent-at")]
    pub(crate) source_sent_at: Option<StringAttribute>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StringAttribute {
    pub(crate) string_value: Option<String>,
}

/// The two system attributes asked for; SQS sends numbers as strings.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SystemAttributes {
    pub(crate) sent_timestamp: Option<String>,
    pub(crate) approximate_receive_count: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchInput<'a> {
    pub(crate) queue_url: &'a str,
    pub(crate) entries: Vec<BatchEntry<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchEntry<'a> {
    id: &'static str,
    receipt_handle: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    visibility_timeout: Option<u32>,
}

/// Entries for one batch call (≤ 10 receipt handles), with a visibility timeout for
/// ChangeMessageVisibilityBatch.
pub(crate) fn entries<'a>(
    receipts: impl Iterator<Item = &'a str>,
    visibility_timeout: Option<u32>,
) -> Vec<BatchEntry<'a>> {
    IDS.iter()
        .zip(receipts)
        .map(|(id, receipt_handle)| BatchEntry {
            id,
            receipt_handle,
            visibility_timeout,
        })
        .collect()
}

/// A batch call's reply: only how many entries failed matters.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchOutput {
    #[serde(default)]
    failed: Option<Vec<IgnoredAny>>,
}

impl BatchOutput {
    pub(crate) fn failed(&self) -> usize {
        self.failed.as_ref().map_or(0, Vec::len)
    }
}

/// The headers of a reply that decide how its body is read.
#[derive(Debug, Default)]
pub(super) struct ReplyHeaders<'a> {
    /// `x-amzn-query-error`: `<code>;<Sender|Receiver>` (SQS's query-compatible error code).
    pub(super) query_error: Option<&'a str>,
    /// `x-amzn-errortype`: the error shape, when the body does not carry `__type`.
    pub(super) error_type: Option<&'a str>,
}

/// The reply to a call: its output, or the failure SQS (or whatever answered) reported.
pub(super) fn reply<T: for<'de> Deserialize<'de>>(
    status: u16,
    headers: &ReplyHeaders<'_>,
    body: &[u8],
) -> Result<T, SdkFailure> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body).map_err(|_| match foreign_protocol(body) {
            Some(looks_like) => SdkFailure::NotJson { looks_like },
            None => SdkFailure::Unreadable { status },
        });
    }
    if let Some(looks_like) = foreign_protocol(body) {
        return Err(SdkFailure::NotJson { looks_like });
    }
    #[derive(Deserialize)]
    struct ErrorReply {
        #[serde(rename = "__type")]
        kind: Option<String>,
        #[serde(alias = "Message")]
        message: Option<String>,
    }
    let parsed: Option<ErrorReply> = serde_json::from_slice(body).ok();
    let code = headers
        .query_error
        .and_then(|value| value.split(';').next())
        .or(headers.error_type)
        .or(parsed.as_ref().and_then(|p| p.kind.as_deref()))
        .map(error_code)
        .filter(|code| !code.is_empty())
        .map(|code| {
            crate::safe_text::escape(code)
                .chars()
                .take(100)
                .collect::<String>()
        });
    match (code, parsed) {
        (Some(code), parsed) => Err(SdkFailure::Service {
            code,
            message: parsed
                .and_then(|p| p.message)
                .map(|m| {
                    crate::safe_text::escape(&m)
                        .chars()
                        .take(MESSAGE_CAP)
                        .collect()
                })
                .unwrap_or_default(),
            status,
        }),
        (None, _) if status >= 500 || status == 429 => Err(SdkFailure::Transport(format!(
            "HTTP {status} without an AWS error"
        ))),
        (None, _) => Err(SdkFailure::Unreadable { status }),
    }
}

/// The error code of a `__type` / `x-amzn-errortype` value, as the SDK reads it:
/// `com.amazonaws.sqs#QueueDoesNotExist:http://…` → `QueueDoesNotExist`.
fn error_code(raw: &str) -> &str {
    let after_namespace = raw.rsplit('#').next().unwrap_or(raw);
    after_namespace
        .split(':')
        .next()
        .unwrap_or(after_namespace)
        .trim()
}

#[cfg(test)]
mod tests;
