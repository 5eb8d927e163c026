//! Receiving, deleting and sending SQS messages.
//!
//! Works against real AWS (default credential chain) and LocalStack (endpoint override plus static
//! test credentials when none are configured). Errors are split into fatal ones a user must fix
//! (missing queue, bad credentials) and transient ones the pipeline retries.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use chrono::{DateTime, TimeZone, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};

/// SQS accepts at most ten entries per batch call and returns at most ten messages per receive.
pub const SQS_BATCH_MAX: usize = 10;

/// One received message, with what the pipeline needs to process and acknowledge it.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// SQS MessageId: stable across redeliveries, hence the deduplication key.
    pub message_id: String,
    /// Handle for this delivery; needed to delete the message.
    pub receipt_handle: String,
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
pub struct Forwarded<'a> {
    /// The raw body, as received.
    pub body: &'a str,
    /// Its MessageId in the source queue.
    pub message_id: &'a str,
    /// Why it was rejected (a [`crate::event::RejectCode`] text).
    pub reason_code: &'a str,
}

/// How to reach the queue.
#[derive(Debug, Clone, Default)]
pub struct SqsSettings {
    /// LocalStack URL; `None` means real AWS.
    pub endpoint: Option<String>,
    /// AWS region; `None` means the default provider chain (and `us-east-1` with an endpoint override).
    pub region: Option<String>,
    /// Full queue URL, if known.
    pub queue_url: Option<String>,
    /// Queue name, resolved to a URL with GetQueueUrl when no URL is given.
    pub queue_name: String,
}

/// SQS failures, split by what the caller should do about them.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The queue does not exist: retrying won't help.
    #[error("SQS queue `{queue}` does not exist{where_}; create it or fix --queue-name/--queue-url/--region")]
    QueueNotFound {
        /// Name or URL as configured.
        queue: String,
        /// " at <endpoint>" or "".
        where_: String,
    },
    /// Credentials were refused: retrying won't help.
    #[error("SQS refused the credentials ({code}); check AWS_ACCESS_KEY_ID/AWS_PROFILE or the instance role")]
    Auth {
        /// AWS error code.
        code: String,
    },
    /// Network trouble, throttling or a service error: worth retrying.
    #[error("SQS request failed: {0}")]
    Transient(String),
}

impl SourceError {
    /// Whether retrying the same call may succeed.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, SourceError::Transient(_))
    }

    fn from_sdk<E, R>(err: SdkError<E, R>, queue: &str, endpoint: Option<&str>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let code = err.code().unwrap_or_default().to_string();
        if code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist") {
            return SourceError::QueueNotFound {
                queue: queue.to_string(),
                where_: endpoint.map(|e| format!(" at {e}")).unwrap_or_default(),
            };
        }
        const AUTH_CODES: [&str; 6] = [
            "InvalidClientTokenId",
            "SignatureDoesNotMatch",
            "UnrecognizedClientException",
            "AccessDenied",
            "InvalidSecurity",
            "ExpiredToken",
        ];
        if AUTH_CODES.iter().any(|c| code.contains(c)) {
            return SourceError::Auth { code };
        }
        SourceError::Transient(DisplayErrorContext(&err).to_string())
    }
}

/// Messages visible and in flight, as SQS approximates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// ApproximateNumberOfMessages.
    pub visible: u64,
    /// ApproximateNumberOfMessagesNotVisible.
    pub in_flight: u64,
}

/// A connected queue.
#[derive(Debug, Clone)]
pub struct SqsSource {
    client: Client,
    queue_url: String,
    endpoint: Option<String>,
    visibility_timeout: Duration,
}

/// Run batch calls (one per chunk of ten), eight at a time, results in call order.
///
/// The futures are built into a `Vec` by the caller first: a lazy `map(|chunk| ..)` inside the
/// stream would make the resulting future not `Send` (rust-lang/rust#64552), and callers spawn it.
async fn in_parallel<T, F>(calls: Vec<F>) -> Result<Vec<T>, SourceError>
where
    F: std::future::Future<Output = Result<T, SourceError>>,
{
    stream::iter(calls).buffered(8).try_collect().await
}

/// Build an SQS client for the settings (no network call).
pub async fn client(settings: &SqsSettings) -> Client {
    Client::new(&crate::aws::config(settings.endpoint.as_deref(), settings.region.as_deref()).await)
}

impl SqsSource {
    /// Connect and resolve the queue URL (one GetQueueUrl call unless a URL was given).
    pub async fn connect(settings: &SqsSettings) -> Result<Self, SourceError> {
        let client = client(settings).await;
        let endpoint = settings.endpoint.clone();
        let queue_url = match &settings.queue_url {
            Some(url) => url.clone(),
            None => client
                .get_queue_url()
                .queue_name(&settings.queue_name)
                .send()
                .await
                .map_err(|e| SourceError::from_sdk(e, &settings.queue_name, endpoint.as_deref()))?
                .queue_url
                .unwrap_or_default(),
        };
        let mut source = Self {
            client,
            queue_url,
            endpoint,
            visibility_timeout: Duration::from_secs(30),
        };
        // Reading the attributes also makes a wrong URL or bad credentials fail now, not later.
        let attributes = source
            .attributes(&[QueueAttributeName::VisibilityTimeout])
            .await?;
        if let Some(secs) = attributes
            .get(&QueueAttributeName::VisibilityTimeout)
            .and_then(|v| v.parse().ok())
        {
            source.visibility_timeout = Duration::from_secs(secs);
        }
        Ok(source)
    }

    /// Create the queue if it is missing (idempotent), then connect. For the demo and tests.
    pub async fn create(settings: &SqsSettings) -> Result<Self, SourceError> {
        let client = client(settings).await;
        client
            .create_queue()
            .queue_name(&settings.queue_name)
            .send()
            .await
            .map_err(|e| {
                SourceError::from_sdk(e, &settings.queue_name, settings.endpoint.as_deref())
            })?;
        Self::connect(settings).await
    }

    /// The resolved queue URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The queue's default visibility timeout, read at connect: how long a received message stays
    /// hidden before SQS hands it out again.
    pub fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout
    }

    /// A handle on another queue reached the same way (a dead-letter queue).
    pub async fn sibling(&self, queue_url: &str) -> Result<Self, SourceError> {
        let mut other = self.clone();
        other.queue_url = queue_url.to_string();
        other.depth().await?;
        Ok(other)
    }

    fn error<E, R>(&self, err: SdkError<E, R>) -> SourceError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        SourceError::from_sdk(err, &self.queue_url, self.endpoint.as_deref())
    }

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
                    message_id: m.message_id?,
                    receipt_handle: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    received,
                })
            })
            .collect())
    }

    /// Delete messages by receipt handle, ten per call, calls in parallel. Returns how many SQS
    /// reported as failed (they will be redelivered and deduplicated by the ledger).
    pub async fn delete(&self, receipts: &[String]) -> Result<usize, SourceError> {
        let calls: Vec<_> = receipts
            .chunks(SQS_BATCH_MAX)
            .map(|chunk| self.delete_chunk(chunk))
            .collect();
        Ok(in_parallel(calls).await?.into_iter().sum())
    }

    async fn delete_chunk(&self, chunk: &[String]) -> Result<usize, SourceError> {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect::<Vec<_>>();
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(out.failed.len())
    }

    /// Keep messages hidden for another `timeout` from now (ChangeMessageVisibilityBatch), so a
    /// batch that takes long to commit is not handed to another consumer meanwhile. Returns how many
    /// SQS refused (typically: already deleted or expired).
    pub async fn extend_visibility(
        &self,
        receipts: &[String],
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
        chunk: &[String],
        timeout: Duration,
    ) -> Result<usize, SourceError> {
        let seconds = timeout.as_secs().clamp(1, 12 * 60 * 60) as i32;
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(seconds)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect::<Vec<_>>();
        let out = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(out.failed.len())
    }

    /// Forward rejected messages, raw, to this (dead-letter) queue, tagged with why and where they
    /// came from, so they can be redriven after a fix.
    pub async fn forward(&self, messages: &[Forwarded<'_>]) -> Result<(), SourceError> {
        let calls: Vec<_> = messages
            .chunks(SQS_BATCH_MAX)
            .map(|chunk| {
                let entries = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        let text = |value: &str| {
                            MessageAttributeValue::builder()
                                .data_type("String")
                                .string_value(value)
                                .build()
                                .expect("data type is set")
                        };
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(m.body)
                            .message_attributes("login-etl-reason-code", text(m.reason_code))
                            .message_attributes("login-etl-source-message-id", text(m.message_id))
                            .build()
                            .expect("id and body are set")
                    })
                    .collect();
                self.send_entries(entries)
            })
            .collect();
        in_parallel(calls).await?;
        Ok(())
    }

    /// Send bodies, ten per call, calls in parallel. Returns the SQS MessageIds in input order;
    /// fails if SQS rejects any entry.
    pub async fn send(&self, bodies: &[String]) -> Result<Vec<String>, SourceError> {
        let calls: Vec<_> = bodies
            .chunks(SQS_BATCH_MAX)
            .map(|chunk| self.send_chunk(chunk))
            .collect();
        Ok(in_parallel(calls).await?.into_iter().flatten().collect())
    }

    async fn send_chunk(&self, chunk: &[String]) -> Result<Vec<String>, SourceError> {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .expect("id and body are set")
            })
            .collect();
        self.send_entries(entries).await
    }

    /// One SendMessageBatch call; message ids in entry order. Fails if SQS rejects any entry.
    async fn send_entries(
        &self,
        entries: Vec<SendMessageBatchRequestEntry>,
    ) -> Result<Vec<String>, SourceError> {
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
        Ok(sent.into_iter().map(|entry| entry.message_id).collect())
    }

    /// Delete every message in the queue (SQS allows one purge per minute per queue).
    pub async fn purge(&self) -> Result<(), SourceError> {
        self.client
            .purge_queue()
            .queue_url(&self.queue_url)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn attributes(
        &self,
        names: &[QueueAttributeName],
    ) -> Result<HashMap<QueueAttributeName, String>, SourceError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(out.attributes.unwrap_or_default())
    }

    /// Approximate queue depth (for the drain summary, the demo and tests).
    pub async fn depth(&self) -> Result<QueueDepth, SourceError> {
        let attributes = self
            .attributes(&[
                QueueAttributeName::ApproximateNumberOfMessages,
                QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            ])
            .await?;
        let get = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            visible: get(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }
}
