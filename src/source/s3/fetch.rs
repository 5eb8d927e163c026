//! Reading one object a notification named: its content as a stream (never whole in memory) and
//! its LastModified (what dates its logins when they carry no time of their own). The content read
//! is the one the notification named: its version id, or on an unversioned bucket its ETag
//! (`If-Match`), so a key written again since is not read under the old content's chunk ids.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use chrono::{DateTime, Utc};
use tokio::io::AsyncRead;
use url::Url;

use super::resume::{Pinned, Resuming};
use super::ObjectRef;

/// Where objects are read from. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    client: aws_sdk_s3::Client,
}

/// An object opened for reading.
pub struct Opened {
    /// Its content, streamed.
    pub body: Box<dyn AsyncRead + Unpin + Send>,
    /// When it was written.
    pub last_modified: Option<DateTime<Utc>>,
}

/// Why an object could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Gone, replaced, or refused for good: what its quarantine entry says (no retry helps).
    #[error("{0}")]
    Unreadable(String),
    /// A network error, throttling, a server error: the notification comes back and is retried.
    #[error("{0}")]
    Transient(String),
}

impl ObjectStore {
    /// An S3 client with the queue's credentials and region; `endpoint` for LocalStack or a VPC
    /// endpoint (path-style addressing then, as LocalStack needs).
    pub async fn new(endpoint: Option<&Url>, region: Option<&str>) -> Self {
        let sdk = crate::aws::config(endpoint, region).await;
        let config = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(endpoint.is_some());
        ObjectStore {
            client: aws_sdk_s3::Client::from_conf(config.build()),
        }
    }

    /// The SDK client (for listing).
    pub(super) fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// Open the content the notification named.
    pub async fn open(&self, object: &ObjectRef) -> Result<Opened, FetchError> {
        let mut get = (self.client.get_object())
            .bucket(&object.bucket)
            .key(&object.key);
        // The ETag too when there is a version id: a versioning-suspended bucket writes every
        // object as version "null", in place.
        if let Some(version) = &object.version_id {
            get = get.version_id(version);
        }
        if let Some(etag) = &object.etag {
            get = get.if_match(format!("\"{etag}\""));
        }
        let output = get.send().await.map_err(classify)?;
        let last_modified = (output.last_modified)
            .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
        // A resume asks for exactly this content: the reply's own ETag and version.
        let pinned = Pinned {
            client: self.client.clone(),
            etag: (output.e_tag.clone())
                .or_else(|| object.etag.as_ref().map(|e| format!("\"{e}\""))),
            version_id: output
                .version_id
                .clone()
                .or_else(|| object.version_id.clone()),
            length: output
                .content_length
                .and_then(|len| u64::try_from(len).ok()),
            object: object.clone(),
        };
        let body = Box::new(output.body.into_async_read());
        Ok(Opened {
            body: Box::new(Resuming::new(pinned, body)),
            last_modified,
        })
    }
}

/// A failure to receive the object's bytes (after the resumes [`super::resume`] tried), not a
/// fault of its content.
#[derive(Debug, thiserror::Error)]
#[error("receiving the object failed ({0:?})")]
pub(super) struct TransportError(pub(super) std::io::ErrorKind);

/// Whether a read error came from receiving the bytes (retry) rather than from their content
/// (corrupt gzip, cut short: quarantine).
pub fn is_transport(error: &std::io::Error) -> bool {
    error.get_ref().is_some_and(|e| e.is::<TransportError>())
}

/// An SDK error as one safe line (its code and status, never a response body) and its kind.
pub(super) fn classify<E: ProvideErrorMetadata>(error: SdkError<E>) -> FetchError {
    let status = error.raw_response().map(|r| r.status().as_u16());
    let code = error.code().unwrap_or("").to_string();
    let throttled = matches!(
        code.as_str(),
        "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "RequestTimeout"
            | "RequestTimeTooSkewed"
    );
    match (status, code.as_str()) {
        (_, "NoSuchKey" | "NoSuchBucket" | "NoSuchVersion") | (Some(404), _) => {
            FetchError::Unreadable(format!("the object is gone ({})", or_status(&code, status)))
        }
        (Some(412), _) | (_, "PreconditionFailed") => FetchError::Unreadable(
            "the object was written again since this notification (its new content has a \
             notification of its own)"
                .into(),
        ),
        // The role's or the key's permissions: an operator's fix, after which the notification
        // still loads (it comes back until then; after --max-receives it is quarantined).
        (Some(403), _) => FetchError::Transient(format!(
            "the object cannot be read ({}): check the task role's s3:GetObject on the bucket (and \
             kms:Decrypt for SSE-KMS objects)",
            or_status(&code, status)
        )),
        // Any other refusal of the request is for good: a bad version id, a wrong region, an
        // archived object.
        (Some(300..=499), _) if status != Some(408) && status != Some(429) && !throttled => {
            FetchError::Unreadable(format!(
                "S3 refused to read the object ({})",
                or_status(&code, status)
            ))
        }
        _ => FetchError::Transient(format!(
            "reading the object failed ({}); the notification is retried",
            match (&error, status) {
                (SdkError::DispatchFailure(_), _) => "no connection to S3".to_string(),
                (SdkError::TimeoutError(_), _) => "timed out".to_string(),
                _ => or_status(&code, status),
            }
        )),
    }
}

fn or_status(code: &str, status: Option<u16>) -> String {
    match (code, status) {
        ("", Some(status)) => format!("HTTP {status}"),
        ("", None) => "no reply".into(),
        (code, _) => crate::safe_text::escape(code).chars().take(60).collect(),
    }
}
