//! What `backfill` enqueues: the objects under a prefix (ListObjectsV2, page by page), each as a
//! notification of the shape S3 itself sends, so the consumers already running read it exactly
//! as they read a live one (and a second backfill of the same objects adds nothing: same content,
//! same chunk ids).

use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::fetch::{classify, FetchError, ObjectStore};
use super::ObjectRef;

/// An `s3://bucket/prefix` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix (may be empty: the whole bucket).
    pub prefix: String,
}

impl std::str::FromStr for Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s.strip_prefix("s3://").ok_or_else(|| {
            format!(
                "expected s3://bucket/prefix, got `{}`",
                crate::safe_text::escape(s)
            )
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err("expected s3://bucket/prefix: the bucket is missing".into());
        }
        Ok(Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// One object found under the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// What a notification names.
    pub object: ObjectRef,
    /// When it was written.
    pub last_modified: Option<DateTime<Utc>>,
}

impl ObjectStore {
    /// One page of the objects under `location` (up to 1,000), and the token of the next.
    pub async fn list_page(
        &self,
        location: &Location,
        token: Option<String>,
    ) -> Result<(Vec<Listed>, Option<String>), FetchError> {
        let page = (self.client().list_objects_v2())
            .bucket(&location.bucket)
            .prefix(&location.prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(classify)?;
        let listed = (page.contents.unwrap_or_default().into_iter())
            .filter_map(|o| {
                Some(Listed {
                    last_modified: (o.last_modified)
                        .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                    object: ObjectRef {
                        bucket: location.bucket.clone(),
                        key: o.key?,
                        version_id: None,
                        etag: (o.e_tag)
                            .map(|e| e.trim_matches('"').to_string())
                            .filter(|e| !e.is_empty()),
                        size: o.size.and_then(|s| u64::try_from(s).ok()),
                    },
                })
            })
            .collect();
        let next = match page.is_truncated {
            Some(true) => page.next_continuation_token,
            _ => None,
        };
        Ok((listed, next))
    }
}

/// What S3 leaves unescaped in a notification's key: letters, digits, `-_.~` and `/`.
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// A notification naming `object`, shaped as S3 sends one (`ObjectCreated:Backfill`).
pub fn notification_of(object: &ObjectRef) -> String {
    let key = utf8_percent_encode(&object.key, KEY).to_string();
    serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Backfill",
        "s3": {
            "bucket": {"name": object.bucket},
            "object": {"key": key, "size": object.size, "eTag": object.etag},
        },
    }]})
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::s3::notification::{parse, Notification};

    #[test]
    fn a_location_is_a_bucket_and_a_prefix() {
        let at = |s: &str| s.parse::<Location>();
        assert_eq!(at("s3://b/logs/2026/").unwrap().prefix, "logs/2026/");
        assert_eq!(at("s3://b").unwrap().prefix, "");
        assert!(at("b/logs").is_err());
        assert!(at("s3:///logs").is_err());
    }

    #[test]
    fn a_backfill_notification_reads_back_as_its_object() {
        for key in ["logs/a b+c%d/é.ndjson.gz", "plain", "x/#1?&=", ""] {
            let object = ObjectRef {
                bucket: "history".into(),
                key: key.into(),
                version_id: None,
                etag: Some("abc".into()),
                size: Some(7),
            };
            assert_eq!(
                parse(&notification_of(&object)),
                Notification::Objects(vec![object.clone()]),
                "{key}"
            );
        }
    }
}
