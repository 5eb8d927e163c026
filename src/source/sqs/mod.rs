//! The SQS queue client: connect (resolve the URL, read the visibility timeout), receive, delete,
//! keep invisible, send, forward, purge, depth.
//!
//! Works against real AWS (default credential chain) and LocalStack (endpoint override plus static
//! test credentials when none are configured). Every failure is a [`SourceError`] with a
//! disposition: stop at once (what to fix), or retry.

mod batch;
mod envelope;
mod error;
mod protocol;
mod receive;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;
use url::Url;

pub(crate) use envelope::Forwarded;
pub use envelope::{Envelope, MessageId, ReceiptHandle};
pub use error::SourceError;
pub use protocol::SqsProtocol;

/// SQS accepts at most ten entries per batch call and returns at most ten messages per receive.
pub(crate) const SQS_BATCH_MAX: usize = 10;

/// How to reach the queue.
#[derive(Debug, Clone, Default)]
pub struct SqsSettings {
    /// LocalStack URL; `None` means real AWS.
    pub endpoint: Option<Url>,
    /// AWS region; `None` means the default provider chain (and `us-east-1` with an endpoint).
    pub region: Option<String>,
    /// Full queue URL, if known.
    pub queue_url: Option<String>,
    /// Queue name, resolved to a URL with GetQueueUrl when no URL is given.
    pub queue_name: String,
    /// JSON, query, or detect (see [`SqsProtocol`]).
    pub protocol: SqsProtocol,
}

/// Messages visible, in flight and delayed, as SQS approximates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct QueueDepth {
    /// ApproximateNumberOfMessages.
    pub visible: u64,
    /// ApproximateNumberOfMessagesNotVisible.
    pub in_flight: u64,
    /// ApproximateNumberOfMessagesDelayed.
    pub delayed: u64,
}

/// The queue settings `check` compares with login-etl's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueConfig {
    pub(crate) visibility_timeout: Duration,
    pub(crate) retention: Duration,
    /// `maxReceiveCount` of the redrive policy, if the queue has one.
    pub(crate) redrive_max_receives: Option<u32>,
}

/// A connected queue. Cheap to clone (the SDK client is shared).
#[derive(Debug, Clone)]
pub struct SqsSource {
    client: Client,
    queue_url: String,
    endpoint: Option<String>,
    visibility_timeout: Duration,
}

/// An SQS client for the settings (no network call).
pub async fn client(settings: &SqsSettings) -> Client {
    let sdk = crate::aws::config(settings.endpoint.as_ref(), settings.region.as_deref()).await;
    let mut config = aws_sdk_sqs::config::Builder::from(&sdk);
    if let Some(http) = protocol::http_client(settings.protocol, settings.endpoint.as_ref(), &sdk) {
        config = config.http_client(http);
    }
    Client::from_conf(config.build())
}

/// Regions of the public AWS partitions, for a clear error on a typo instead of minutes of DNS
/// failures. Only checked when no endpoint is given.
const AWS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
    "cn-north-1",
    "cn-northwest-1",
];

impl SqsSettings {
    /// Settings that can't work, found before any call.
    fn check(&self) -> Result<(), SourceError> {
        match (&self.endpoint, self.region.as_deref()) {
            (None, Some(region)) if !AWS_REGIONS.contains(&region) => {
                Err(SourceError::Config(format!(
                    "unknown AWS region `{region}`; fix --region / AWS_REGION (e.g. us-east-1)"
                )))
            }
            _ => Ok(()),
        }
    }
}

impl SqsSource {
    /// Connect and resolve the queue URL (one GetQueueUrl call unless a URL was given), then read
    /// the visibility timeout, which also makes a wrong URL or bad credentials fail now.
    pub async fn connect(settings: &SqsSettings) -> Result<Self, SourceError> {
        settings.check()?;
        let client = client(settings).await;
        if client.config().region().is_none() {
            return Err(SourceError::Config(
                "no AWS region configured: set --region / AWS_REGION".into(),
            ));
        }
        let endpoint = settings.endpoint.as_ref().map(|e| e.to_string());
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
        settings.check()?;
        let endpoint = settings.endpoint.as_ref().map(|e| e.to_string());
        client(settings)
            .await
            .create_queue()
            .queue_name(&settings.queue_name)
            .send()
            .await
            .map_err(|e| SourceError::from_sdk(e, &settings.queue_name, endpoint.as_deref()))?;
        Self::connect(settings).await
    }

    /// The resolved queue URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The queue's default visibility timeout, read at connect: how long a received message stays
    /// hidden before SQS hands it out again.
    pub(crate) fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout
    }

    /// A handle on another queue reached the same way (a dead-letter queue).
    pub(crate) async fn sibling(&self, queue_url: &str) -> Result<Self, SourceError> {
        let mut other = self.clone();
        other.queue_url = queue_url.to_string();
        other.depth().await?;
        Ok(other)
    }

    fn error<E>(&self, err: SdkError<E, HttpResponse>) -> SourceError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        SourceError::from_sdk(err, &self.queue_url, self.endpoint.as_deref())
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

    /// Approximate queue depth (for the drain summary, `status` and tests).
    pub async fn depth(&self) -> Result<QueueDepth, SourceError> {
        let attributes = self
            .attributes(&[
                QueueAttributeName::ApproximateNumberOfMessages,
                QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                QueueAttributeName::ApproximateNumberOfMessagesDelayed,
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
            delayed: get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        })
    }

    /// Visibility timeout, retention and redrive policy, read now.
    pub(crate) async fn config(&self) -> Result<QueueConfig, SourceError> {
        let attributes = self
            .attributes(&[
                QueueAttributeName::VisibilityTimeout,
                QueueAttributeName::MessageRetentionPeriod,
                QueueAttributeName::RedrivePolicy,
            ])
            .await?;
        let seconds = |name: QueueAttributeName| {
            Duration::from_secs(
                attributes
                    .get(&name)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )
        };
        let redrive_max_receives = attributes
            .get(&QueueAttributeName::RedrivePolicy)
            .and_then(|policy| serde_json::from_str::<serde_json::Value>(policy).ok())
            .and_then(|policy| match &policy["maxReceiveCount"] {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            })
            .map(|n| n.min(u64::from(u32::MAX)) as u32);
        Ok(QueueConfig {
            visibility_timeout: seconds(QueueAttributeName::VisibilityTimeout),
            retention: seconds(QueueAttributeName::MessageRetentionPeriod),
            redrive_max_receives,
        })
    }
}
