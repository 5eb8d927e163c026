//! The hot path: ReceiveMessage, DeleteMessageBatch and ChangeMessageVisibilityBatch without the
//! SDK's orchestrator.
//!
//! Per call the SDK runs interceptors, resolves the endpoint and the identity, builds header maps
//! and re-derives the SigV4 signing key: about 150 µs of CPU per call here, most of login-etl's
//! cost per message (docs/benchmarks.md). These three calls are made for every message, so they
//! are written as plain JSON, signed with `aws-sigv4`, and sent through the SDK's own connector
//! to the endpoint the SDK resolved ([`tap`]), with the credentials the SDK client uses (one
//! cache, `aws::credentials`) and a clock corrected by the server's as the SDK's is ([`skew`]).
//! Every other call (and every call before the first one) stays on
//! the SDK. Against a query-protocol SQS the connector is the translator, which turns these
//! requests into the query form as it does the SDK's.

mod skew;
mod tap;
pub(super) mod wire;

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde::{Deserialize, Serialize};

pub(super) use tap::Tapped;

use crate::aws::SdkFailure;

/// Attempts per call, as the SDK's standard retry makes.
const ATTEMPTS: u32 = 3;

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// Error codes SQS and AWS use for throttling and transient trouble (the SDK's list).
const TRANSIENT_CODES: [&str; 9] = [
    "Throttl",
    "RequestLimitExceeded",
    "TooManyRequests",
    "RequestTimeout",
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "InternalFailure",
    "KMSThrottling",
];

const USER_AGENT: &str = concat!("login-etl/", env!("CARGO_PKG_VERSION"));

/// The hot calls' client. Cheap to clone.
#[derive(Clone)]
pub(super) struct HotPath {
    tapped: Tapped,
    credentials: Option<SharedCredentialsProvider>,
    region: String,
    skew: skew::Skew,
    attempt_timeout: Duration,
}

/// Only the route: credentials are never printed.
impl std::fmt::Debug for HotPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotPath")
            .field("uri", &self.tapped.route().map(|r| r.uri.to_string()))
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl HotPath {
    pub(super) fn new(
        tapped: Tapped,
        credentials: Option<SharedCredentialsProvider>,
        region: String,
        attempt_timeout: Duration,
    ) -> Self {
        Self {
            tapped,
            credentials,
            region,
            skew: skew::Skew::default(),
            attempt_timeout,
        }
    }

    /// One call: `target` is the `X-Amz-Target` (`AmazonSQS.<Action>`). Like the SDK's standard
    /// retry, up to [`ATTEMPTS`] attempts when the failure is transport, throttling or a 5xx,
    /// each wait random up to 1 s × 2ⁿ (`crate::retry` then decides about the call as a whole);
    /// like the SDK, also when SigV4 was refused and the server's clock is far off ours (the next
    /// attempt is signed with the server's time).
    pub(super) async fn call<I, O>(&self, target: &'static str, input: &I) -> Result<O, SdkFailure>
    where
        I: Serialize,
        O: for<'de> Deserialize<'de>,
    {
        let mut attempt = 1;
        loop {
            match self.attempt(target, input).await {
                Err(failure)
                    if attempt < ATTEMPTS
                        && (worth_another_attempt(&failure) || self.skew.explains(&failure)) =>
                {
                    let cap = Duration::from_secs(1 << (attempt - 1)).min(MAX_BACKOFF);
                    tokio::time::sleep(cap.mul_f64(rand::random::<f64>())).await;
                    attempt += 1;
                }
                Err(failure) if self.skew.explains(&failure) => {
                    return Err(self.skew.failure(failure))
                }
                done => return done,
            }
        }
    }

    async fn attempt<I, O>(&self, target: &'static str, input: &I) -> Result<O, SdkFailure>
    where
        I: Serialize,
        O: for<'de> Deserialize<'de>,
    {
        let attempt = async {
            let request = self.signed(target, input).await?;
            let route = self.route()?;
            let sent = SystemTime::now();
            let response = route
                .connector
                .call(request)
                .await
                .map_err(|e| SdkFailure::of_connector(&e))?;
            let status = response.status().as_u16();
            let header = |name: &str| response.headers().get(name).map(str::to_owned);
            self.skew
                .learn(header("date").as_deref(), sent, SystemTime::now());
            let (query_error, error_type) =
                (header("x-amzn-query-error"), header("x-amzn-errortype"));
            let body = ByteStream::new(response.into_body())
                .collect()
                .await
                .map_err(|e| SdkFailure::Transport(crate::aws::chain_text(&e)))?
                .into_bytes();
            let headers = wire::ReplyHeaders {
                query_error: query_error.as_deref(),
                error_type: error_type.as_deref(),
            };
            wire::reply(status, &headers, &body)
        };
        tokio::time::timeout(self.attempt_timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(SdkFailure::Transport("timed out".into())))
    }

    fn route(&self) -> Result<&tap::Route, SdkFailure> {
        self.tapped.route().ok_or_else(|| {
            SdkFailure::Transport("no SQS call was made before the first receive".into())
        })
    }

    /// The POST of `input` as JSON to the SDK's endpoint, signed with SigV4.
    async fn signed<I: Serialize>(
        &self,
        target: &'static str,
        input: &I,
    ) -> Result<HttpRequest, SdkFailure> {
        let route = self.route()?;
        let body = serde_json::to_vec(input)
            .map_err(|e| SdkFailure::Transport(format!("an SQS request cannot be written: {e}")))?;
        let host = route.uri.authority().map_or("", |a| a.as_str());
        let mut request = http::Request::builder()
            .method("POST")
            .uri(route.uri.clone())
            .header("host", host)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", target)
            .header("x-amzn-query-mode", "true")
            .header("user-agent", USER_AGENT)
            .body(())
            .map_err(|_| SdkFailure::Transport("an SQS request cannot be built".into()))?;
        let identity = self.identity().await?;
        super::sigv4::sign_request(
            &mut request,
            &body,
            &identity,
            &self.region,
            self.skew.now(),
        )
        .map_err(SdkFailure::Transport)?;
        HttpRequest::try_from(request.map(|()| SdkBody::from(body)))
            .map_err(|e| SdkFailure::Transport(format!("an SQS request cannot be built: {e}")))
    }

    /// The credentials of the SDK client's chain, through its cache (`aws::credentials`): a
    /// fetch that fails is a transient failure, only none configured at all is a stop.
    async fn identity(&self) -> Result<Identity, SdkFailure> {
        let provider = self.credentials.as_ref().ok_or(SdkFailure::NoCredentials)?;
        provider
            .provide_credentials()
            .await
            .map(Identity::from)
            .map_err(|e| SdkFailure::of_credentials(&e))
    }
}

/// Whether another attempt of the same request may succeed: the network, throttling, a 5xx.
fn worth_another_attempt(failure: &SdkFailure) -> bool {
    match failure {
        SdkFailure::Transport(_) => true,
        SdkFailure::Service { code, status, .. } => {
            matches!(status, 429 | 500 | 502 | 503 | 504)
                || TRANSIENT_CODES.iter().any(|c| code.contains(c))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_get_another_attempt() {
        let service = |code: &str, status| SdkFailure::Service {
            code: code.into(),
            message: String::new(),
            status,
        };
        assert!(worth_another_attempt(&SdkFailure::Transport(
            "reset".into()
        )));
        assert!(worth_another_attempt(&service(
            "AWS.SimpleQueueService.RequestThrottled",
            400
        )));
        assert!(worth_another_attempt(&service("InternalError", 500)));
        assert!(!worth_another_attempt(&service(
            "AWS.SimpleQueueService.NonExistentQueue",
            400
        )));
        assert!(!worth_another_attempt(&service("AccessDenied", 403)));
        assert!(!worth_another_attempt(&SdkFailure::NoCredentials));
        assert!(!worth_another_attempt(&SdkFailure::Unreadable {
            status: 200
        }));
    }
}
