//! SQS failures, each with its [`Disposition`] and a one-line text a user can act on. The text is
//! built from [`SdkFailure`], never from a response body (see `crate::aws`).

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

use crate::aws::SdkFailure;
use crate::retry::{Classify, Disposition};

/// What went wrong talking to SQS.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The queue does not exist.
    #[error("SQS queue `{queue}` does not exist{at}; create it or fix --queue-name/--queue-url/--region")]
    QueueNotFound {
        /// Name or URL as configured.
        queue: String,
        /// " at <endpoint>" or "".
        at: String,
    },
    /// Credentials were refused or lack a permission.
    #[error("SQS refused the request ({code}); check AWS_PROFILE / AWS_ACCESS_KEY_ID or the task role, and that it may use the queue")]
    Auth {
        /// AWS error code.
        code: String,
    },
    /// No credentials anywhere in the default chain.
    #[error("no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, run with a task/instance role, or pass --sqs-endpoint for LocalStack")]
    NoCredentials,
    /// The endpoint is not an SQS that speaks the JSON protocol.
    #[error("{endpoint} does not answer like SQS in the JSON protocol: {looks_like}; run with --sqs-protocol query (or auto, the default), or point --sqs-endpoint at LocalStack 3 or later")]
    WrongProtocol {
        /// The endpoint as configured.
        endpoint: String,
        /// What the reply looked like.
        looks_like: String,
    },
    /// The endpoint is not an SQS: it answers with something else, or closes the connection.
    #[error("{0}")]
    NotSqs(String),
    /// Settings that can't work (a missing region, a malformed URL).
    #[error("{0}")]
    Config(String),
    /// Network trouble, throttling or a service error: worth retrying.
    #[error("SQS request failed: {0}")]
    Transient(String),
}

impl Classify for SourceError {
    fn disposition(&self) -> Disposition {
        match self {
            SourceError::Transient(_) => Disposition::Retry,
            _ => Disposition::Stop,
        }
    }
}

const AUTH_CODES: [&str; 7] = [
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "AccessDenied",
    "InvalidSecurity",
    "ExpiredToken",
    "MissingAuthenticationToken",
];

impl SourceError {
    /// Classify an SDK error of a call on `queue` (name or URL) at `endpoint` (None: AWS).
    pub(crate) fn from_sdk<E>(
        err: SdkError<E, HttpResponse>,
        queue: &str,
        endpoint: Option<&str>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        Self::from_failure(SdkFailure::of(&err), queue, endpoint)
    }

    /// Classify a failure of a call on `queue` (name or URL) at `endpoint` (None: AWS), whether
    /// the SDK or the hot path made the call.
    pub(crate) fn from_failure(failure: SdkFailure, queue: &str, endpoint: Option<&str>) -> Self {
        let endpoint_text = || endpoint.unwrap_or("AWS").to_string();
        match failure {
            SdkFailure::NoCredentials => SourceError::NoCredentials,
            SdkFailure::NotJson { looks_like } => SourceError::WrongProtocol {
                endpoint: endpoint_text(),
                looks_like: looks_like.to_string(),
            },
            SdkFailure::Service { code, .. }
                if code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist") =>
            {
                SourceError::QueueNotFound {
                    queue: queue.to_string(),
                    at: endpoint.map(|e| format!(" at {e}")).unwrap_or_default(),
                }
            }
            // The SDK and the hot path both sign with the server's time once they have seen a
            // reply; a refusal left over is the clock's, and retrying cannot fix it.
            SdkFailure::Service { code, .. }
                if code.contains("RequestTimeTooSkewed") || code.contains("RequestExpired") =>
            {
                SourceError::Config(clock_text(&code, None))
            }
            SdkFailure::ClockSkewed { code, skew_secs } => {
                SourceError::Config(clock_text(&code, Some(skew_secs)))
            }
            SdkFailure::CredentialsUnavailable(text) => {
                SourceError::Transient(format!("AWS credentials could not be fetched: {text}"))
            }
            SdkFailure::Service { code, .. } if AUTH_CODES.iter().any(|c| code.contains(c)) => {
                SourceError::Auth { code }
            }
            SdkFailure::NotSqs(text) => SourceError::NotSqs(text),
            SdkFailure::Unreadable { status } => SourceError::WrongProtocol {
                endpoint: endpoint_text(),
                looks_like: format!("a reply that is not an SQS response (HTTP {status})"),
            },
            other => SourceError::Transient(other.to_string()),
        }
    }
}

/// A request refused for its time: what to fix.
fn clock_text(code: &str, skew_secs: Option<i64>) -> String {
    let off = match skew_secs {
        Some(secs) => format!("{secs} s off SQS's"),
        None => "more than 5 minutes off".into(),
    };
    format!(
        "SQS refused the request's time ({code}): this machine's clock is {off}; synchronise it \
         (NTP, chrony, the instance's time service)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(code: &str) -> SourceError {
        let failure = SdkFailure::Service {
            code: code.into(),
            message: "m".into(),
            status: 400,
        };
        SourceError::from_failure(failure, "q", None)
    }

    #[test]
    fn what_retrying_cannot_fix_stops_with_what_to_fix() {
        let skewed = service("RequestTimeTooSkewed");
        assert_eq!(skewed.disposition(), Disposition::Stop);
        assert!(skewed.to_string().contains("clock"), "{skewed}");
        assert!(matches!(
            service("AWS.SimpleQueueService.NonExistentQueue"),
            SourceError::QueueNotFound { .. }
        ));
        assert!(matches!(service("AccessDenied"), SourceError::Auth { .. }));
        let skewed = SdkFailure::ClockSkewed {
            code: "SignatureDoesNotMatch".into(),
            skew_secs: -600,
        };
        let skewed = SourceError::from_failure(skewed, "q", None);
        assert_eq!(skewed.disposition(), Disposition::Stop);
        assert!(skewed.to_string().contains("-600 s off"), "{skewed}");
        assert_eq!(
            SourceError::from_failure(SdkFailure::NoCredentials, "q", None).disposition(),
            Disposition::Stop
        );
        let unavailable = SdkFailure::CredentialsUnavailable("exited with code 1".into());
        assert_eq!(
            SourceError::from_failure(unavailable, "q", None).disposition(),
            Disposition::Retry
        );
        assert_eq!(
            service("AWS.SimpleQueueService.RequestThrottled").disposition(),
            Disposition::Retry
        );
    }
}
