//! The SQS queue client: connect (resolve the URL, read the visibility timeout), receive, delete,
//! keep invisible, send, forward, purge, depth.
//!
//! Works against real AWS (default credential chain) and LocalStack (endpoint override plus static
//! test credentials when none are configured). Every failure is a [`SourceError`] with a
//! disposition: stop at once (what to fix), or retry.

mod batch;
mod envelope;
mod error;
mod forward;
mod hot;
mod protocol;
mod receive;
mod redrive;
mod sigv4;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::config::StalledStreamProtectionConfig;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;
use url::Url;

pub use envelope::{ChunkOf, Envelope, Forwarded, MessageId, ReceiptHandle};
pub use error::SourceError;
pub use forward::ForwardReport;
pub use protocol::SqsProtocol;
pub use redrive::Redriven;

/// How long connecting to SQS may take (the SDK's own default).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// How long one attempt of any SQS call may take: the longest long poll (20 s) and a margin.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Where S3 objects named by notifications on the queue are read; `None`: the SQS endpoint
    /// if one is given (LocalStack serves both), else AWS.
    pub s3_endpoint: Option<Url>,
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
    /// Receive, delete and change visibility, beside the SDK (see `hot`).
    hot: hot::HotPath,
    queue_url: String,
    endpoint: Option<String>,
    visibility_timeout: Duration,
    /// Where objects named by S3 notifications are read (no call until one is).
    objects: crate::source::s3::ObjectStore,
}

/// An SQS client for the settings (no network call).
pub async fn client(settings: &SqsSettings) -> Client {
    client_and_hot_path(settings).await.0
}

/// An SQS client, and the hot path that will share its connector and endpoint.
async fn client_and_hot_path(settings: &SqsSettings) -> (Client, hot::HotPath) {
    let sdk = crate::aws::config(settings.endpoint.as_ref(), settings.region.as_deref()).await;
    let mut config = aws_sdk_sqs::config::Builder::from(&sdk);
    // No stalled-stream protection (a throughput check on every request body poll, 1 % of the
    // CPU per message, docs/benchmarks.md): SQS calls are small, and a whole attempt is bounded
    // instead, which also ends a call on a half-open connection that would otherwise hang.
    config = config
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
    let http = protocol::http_client(settings.protocol, settings.endpoint.as_ref(), &sdk)
        .or_else(|| sdk.http_client())
        .unwrap_or_else(protocol::default_https_client);
    let tapped = hot::Tapped::default();
    config = config.http_client(tapped.client(http));
    let client = Client::from_conf(config.build());
    let region = client
        .config()
        .region()
        .map_or_else(String::new, |r| r.to_string());
    let hot = hot::HotPath::new(tapped, sdk.credentials_provider(), region, ATTEMPT_TIMEOUT);
    (client, hot)
}

/// Whether `region` has the shape of an AWS region name: `<area>-[<partition>-]<direction>-<n>`
/// (`us-east-1`, `us-gov-west-1`, `ap-southeast-7`). A shape, not a list, so regions AWS adds
/// later work; a typo like `us-eats-1` is still named at once instead of minutes of DNS failures.
/// Only checked when no endpoint is given.
fn looks_like_aws_region(region: &str) -> bool {
    const DIRECTIONS: &[&str] = &[
        "east",
        "west",
        "north",
        "south",
        "central",
        "northeast",
        "northwest",
        "southeast",
        "southwest",
    ];
    let parts: Vec<&str> = region.split('-').collect();
    let lower = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    match parts.as_slice() {
        [area, rest @ .., direction, number] if rest.len() <= 1 => {
            area.len() == 2
                && lower(area)
                && rest.iter().all(|p| lower(p))
                && DIRECTIONS.contains(direction)
                && (1..=2).contains(&number.len())
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// A queue URL is used only if it is one: http(s), a host, a path. An empty or malformed one (a
/// configuration mistake, or an endpoint that is not an SQS) stops at once.
fn check_queue_url(url: &str, endpoint: Option<&str>) -> Result<(), SourceError> {
    let fine = url::Url::parse(url).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some_and(|h| !h.is_empty())
            && !u.path().trim_matches('/').is_empty()
    });
    if fine {
        return Ok(());
    }
    let shown: String = crate::safe_text::escape(url).chars().take(80).collect();
    Err(SourceError::Config(format!(
        "the queue URL `{shown}` is not a URL of a queue (http(s)://host/account/name){}; fix \
         --queue-url, or check that --sqs-endpoint is an SQS",
        endpoint.map(|e| format!(" (from {e})")).unwrap_or_default()
    )))
}

impl SqsSettings {
    /// Settings that can't work, found before any call.
    fn check(&self) -> Result<(), SourceError> {
        match (&self.endpoint, self.region.as_deref()) {
            (None, Some(region)) if !looks_like_aws_region(region) => {
                Err(SourceError::Config(format!(
                    "`{region}` is not an AWS region name (<area>-<direction>-<number>, e.g. \
                     us-east-1); fix --region / AWS_REGION"
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
        let (client, hot) = client_and_hot_path(settings).await;
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
        check_queue_url(&queue_url, endpoint.as_deref())?;
        let objects = crate::source::s3::ObjectStore::new(
            settings.s3_endpoint.as_ref().or(settings.endpoint.as_ref()),
            settings.region.as_deref(),
        )
        .await;
        let mut source = Self {
            client,
            hot,
            queue_url,
            endpoint,
            visibility_timeout: Duration::from_secs(30),
            objects,
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

    /// Where objects named by S3 notifications on the queue are read.
    pub(crate) fn objects(&self) -> &crate::source::s3::ObjectStore {
        &self.objects
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

    /// A failed hot-path call, classified like an SDK one.
    fn failure(&self, failure: crate::aws::SdkFailure) -> SourceError {
        SourceError::from_failure(failure, &self.queue_url, self.endpoint.as_deref())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_queue_urls_are_used() {
        assert!(check_queue_url("http://127.0.0.1:4566/000000000000/q", None).is_ok());
        assert!(check_queue_url("https://sqs.eu-west-1.amazonaws.com/1/q", None).is_ok());
        for bad in [
            "",
            "q",
            "http://",
            "http://host",
            "http://host/",
            "ftp://h/1/q",
        ] {
            assert!(check_queue_url(bad, Some("http://x")).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn region_names_are_checked_by_shape() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "ap-southeast-7",
            "us-gov-west-1",
            "xx-north-9",
        ] {
            assert!(looks_like_aws_region(ok), "{ok}");
        }
        for bad in [
            "us-eats-1",
            "useast1",
            "us-east",
            "US-EAST-1",
            "us-east-1a",
            "eu_west_1",
        ] {
            assert!(!looks_like_aws_region(bad), "{bad}");
        }
    }
}
