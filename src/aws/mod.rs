//! AWS SDK configuration shared by the SQS source and the KMS key loader, and the one way SDK
//! errors are turned into text.
//!
//! SDK errors are never printed with `Debug` or `DisplayErrorContext`: both include the raw HTTP
//! response, and for a ReceiveMessage reply that fails to parse that body is the messages
//! themselves (raw `ip` / `device_id`). [`SdkFailure`] keeps only the error's kind, code, message,
//! HTTP status and the transport's own error chain, and looks at the body only to recognise it.

pub(crate) mod credentials;

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use url::Url;

/// AWS configuration for an optional endpoint override (LocalStack) and region. With an endpoint
/// and no credentials configured, static test credentials are used: LocalStack accepts any, and
/// developers shouldn't have to configure fake ones. Credentials come through one
/// [`credentials::CachedCredentials`], which the SDK clients and the hot path share.
pub(crate) async fn config(endpoint: Option<&Url>, region: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_string()));
    }
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint.as_str().trim_end_matches('/'));
        if region.is_none() && std::env::var_os("AWS_REGION").is_none() {
            loader = loader.region(aws_config::Region::new("us-east-1"));
        }
        let has_env_credentials = std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
            || std::env::var_os("AWS_PROFILE").is_some();
        if !has_env_credentials {
            loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "login-etl-localstack",
            ));
        }
    }
    let sdk = loader.load().await;
    match sdk.credentials_provider() {
        Some(chain) => sdk
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(
                credentials::CachedCredentials::new(chain),
            ))
            .build(),
        None => sdk,
    }
}

/// What an SDK call's failure was, reduced to what may be shown and what decides its disposition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SdkFailure {
    /// No credentials are configured anywhere in the default chain.
    NoCredentials,
    /// Credentials are configured but could not be fetched this time (IMDS, STS, a
    /// `credential_process` that failed or hung): worth retrying.
    CredentialsUnavailable(String),
    /// SigV4 refused, and the server's clock is this many seconds off this machine's.
    ClockSkewed { code: String, skew_secs: i64 },
    /// The endpoint answered, but not in the AWS JSON protocol; `looks_like` says what it was.
    NotJson { looks_like: &'static str },
    /// The service answered with an error code.
    Service {
        code: String,
        message: String,
        status: u16,
    },
    /// A reply that could not be read (no body text is kept).
    Unreadable { status: u16 },
    /// Network, timeout or request-building trouble (the transport's own error chain).
    Transport(String),
    /// The endpoint is not an SQS at all (its reply, or its silence, said so).
    NotSqs(String),
}

impl SdkFailure {
    pub(crate) fn of<E>(err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        if let Some(e) = chain(err).find_map(|e| e.downcast_ref::<CredentialsError>()) {
            return SdkFailure::of_credentials(e);
        }
        if let Some(not_sqs) = chain(err).find_map(|e| e.downcast_ref::<NotSqs>()) {
            return SdkFailure::NotSqs(not_sqs.to_string());
        }
        if let Some(raw) = err.raw_response() {
            let status = raw.status().as_u16();
            if let Some(looks_like) = raw.body().bytes().and_then(foreign_protocol) {
                return SdkFailure::NotJson { looks_like };
            }
            return match (err, err.code()) {
                (SdkError::ServiceError(_), Some(code)) => SdkFailure::Service {
                    code: code.to_string(),
                    message: err.message().unwrap_or_default().to_string(),
                    status,
                },
                _ => SdkFailure::Unreadable { status },
            };
        }
        let text = match err {
            SdkError::TimeoutError(_) => "timed out".to_string(),
            _ => chain_text(err),
        };
        SdkFailure::Transport(text)
    }

    /// Credentials that could not be had: none configured (a stop), or not this time (a retry).
    pub(crate) fn of_credentials(err: &CredentialsError) -> Self {
        if credentials::not_configured(err) {
            SdkFailure::NoCredentials
        } else {
            SdkFailure::CredentialsUnavailable(chain_text(err))
        }
    }

    /// A failure of the HTTP connector itself (no reply): a timeout, the network, or the
    /// translator's finding that the endpoint is not an SQS.
    pub(crate) fn of_connector(
        err: &aws_smithy_runtime_api::client::result::ConnectorError,
    ) -> Self {
        if let Some(not_sqs) = chain(err).find_map(|e| e.downcast_ref::<NotSqs>()) {
            return SdkFailure::NotSqs(not_sqs.to_string());
        }
        if err.is_timeout() {
            return SdkFailure::Transport("timed out".into());
        }
        SdkFailure::Transport(chain_text(err))
    }
}

/// An error and its causes on one line, each cause said once (transport errors repeat their
/// source in their own text).
pub(crate) fn chain_text(err: &(dyn StdError + 'static)) -> String {
    chain(err)
        .skip(1)
        .map(|e| e.to_string())
        .fold(err.to_string(), |text, cause| {
            if text.contains(&cause) {
                text
            } else {
                format!("{text}: {cause}")
            }
        })
}

impl std::fmt::Display for SdkFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SdkFailure::NoCredentials => write!(f, "no AWS credentials found"),
            SdkFailure::CredentialsUnavailable(text) => {
                write!(f, "AWS credentials could not be fetched: {text}")
            }
            SdkFailure::ClockSkewed { code, skew_secs } => write!(
                f,
                "{code}: this machine's clock is {skew_secs} s off the server's"
            ),
            SdkFailure::NotJson { looks_like } => write!(f, "the reply was {looks_like}"),
            SdkFailure::Service {
                code,
                message,
                status,
            } => write!(f, "{code}: {message} (HTTP {status})"),
            SdkFailure::Unreadable { status } => {
                write!(f, "a reply that is not an AWS response (HTTP {status})")
            }
            SdkFailure::Transport(text) | SdkFailure::NotSqs(text) => f.write_str(text),
        }
    }
}

pub(crate) fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |e: &&'a (dyn StdError + 'static)| (*e).source())
}

/// Recognise a reply of an older, query-protocol-only SQS to a JSON-protocol request: XML
/// (moto < 4.1.11 answers 200 with XML), or LocalStack < 3.0's HTTP 500 "Missing Action".
pub(crate) fn foreign_protocol(body: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    if text.contains("Missing Action") || text.contains("Operation detection failed") {
        Some("\"Missing Action\": an SQS that speaks only the older query protocol (such as LocalStack before 3.0)")
    } else if xml_root(&text).is_some_and(|root| root.ends_with("Response")) {
        Some("XML: an SQS that speaks only the older query protocol (such as LocalStack before 3.0 or moto before 4.1.11)")
    } else {
        None
    }
}

/// A reply (or a silence) that no SQS gives. Its text shows the start of the body with digits
/// replaced by `#`, so no address or device id is quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotSqs {
    /// The endpoint as configured.
    pub(crate) endpoint: String,
    /// What came back.
    pub(crate) what: String,
}

impl std::fmt::Display for NotSqs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} does not answer like SQS: {}; check --sqs-endpoint / LOGIN_ETL_SQS_ENDPOINT",
            self.endpoint, self.what
        )
    }
}

impl std::error::Error for NotSqs {}

/// The name of the root element of an XML document (after any `<?xml …?>`, comments and
/// doctype), if the text looks like one. SQS query-protocol replies are `<ActionResponse>` or
/// `<ErrorResponse>`; HTML and other services' documents are not.
pub(crate) fn xml_root(text: &str) -> Option<&str> {
    let mut rest = text.trim_start();
    loop {
        rest = rest.strip_prefix('<')?;
        if rest.starts_with('?') || rest.starts_with('!') {
            rest = rest[rest.find('>')? + 1..].trim_start();
            continue;
        }
        let end = rest.find(|c: char| c.is_whitespace() || c == '>' || c == '/')?;
        return Some(&rest[..end]).filter(|name| !name.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_protocol_replies_are_recognised_without_quoting_them() {
        let xml = b"<?xml version='1.0'?><ReceiveMessageResponse><Body>10.1.2.3</Body>";
        let looks = foreign_protocol(xml).unwrap();
        assert!(looks.contains("query protocol") && !looks.contains("10.1.2.3"));
        let localstack = br#"{"__type": "InternalError", "message": "exception while calling sqs with unknown operation: Operation detection failed. Missing Action in request for query-protocol service"}"#;
        assert!(foreign_protocol(localstack)
            .unwrap()
            .contains("Missing Action"));
        assert_eq!(foreign_protocol(br#"{"Messages": []}"#), None);
    }
}
