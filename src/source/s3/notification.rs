//! S3 event notifications as they arrive on the queue: which objects a message names. S3 sends
//! `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{…}}]}` for each new
//! object, and once `{"Event":"s3:TestEvent",…}` when the notification is set up, which names
//! nothing. Object keys arrive URL-encoded (`+` for a space), as S3 documents.

use serde::Deserialize;

/// One object a notification names: what `GetObject` needs and what makes its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Bucket name.
    pub bucket: String,
    /// Object key, decoded.
    pub key: String,
    /// Version id on a versioned bucket: the identity of this content.
    pub version_id: Option<String>,
    /// ETag (without quotes): the identity of this content on an unversioned bucket.
    pub etag: Option<String>,
    /// Size in bytes, as S3 reported it.
    pub size: Option<u64>,
}

/// What a queue message is, read as an S3 notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Not an S3 notification: a login message, handled as always.
    NotS3,
    /// The test event S3 sends when notifications are set up: acknowledged and dropped.
    Test,
    /// Objects created (other S3 events in the same message are ignored: only created objects
    /// hold logins to load).
    Objects(Vec<ObjectRef>),
}

#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "Records")]
    records: Option<Vec<Record>>,
    #[serde(rename = "Event")]
    event: Option<String>,
    #[serde(rename = "Service")]
    service: Option<String>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventSource")]
    event_source: Option<String>,
    #[serde(rename = "eventName")]
    event_name: Option<String>,
    s3: Option<S3Entity>,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Bucket,
    object: Object,
}

#[derive(Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Deserialize)]
struct Object {
    key: String,
    size: Option<u64>,
    #[serde(rename = "eTag")]
    etag: Option<String>,
    #[serde(rename = "versionId")]
    version_id: Option<String>,
}

/// Read a message body as an S3 notification. Anything that is not one (a login, a JSON array,
/// garbage) is [`Notification::NotS3`]: the login path judges it as before.
pub fn parse(body: &str) -> Notification {
    // Cheap refusal first: logins are the common case and never start like this.
    let trimmed = body.trim_start();
    if !trimmed.starts_with('{') || !(body.contains("\"Records\"") || body.contains("\"Event\"")) {
        return Notification::NotS3;
    }
    let Ok(wire) = serde_json::from_str::<Wire>(body) else {
        return Notification::NotS3;
    };
    if wire.event.as_deref() == Some("s3:TestEvent") && wire.service.as_deref() == Some("Amazon S3")
    {
        return Notification::Test;
    }
    let Some(records) = wire.records else {
        return Notification::NotS3;
    };
    let from_s3: Vec<Record> = (records.into_iter())
        .filter(|r| r.event_source.as_deref() == Some("aws:s3"))
        .collect();
    if from_s3.is_empty() {
        return Notification::NotS3;
    }
    let objects = (from_s3.into_iter())
        .filter(|r| (r.event_name.as_deref()).is_some_and(|n| n.starts_with("ObjectCreated:")))
        .filter_map(|r| r.s3)
        .map(|s3| ObjectRef {
            bucket: s3.bucket.name,
            key: decode_key(&s3.object.key),
            version_id: s3.object.version_id.filter(|v| !v.is_empty()),
            etag: (s3.object.etag)
                .map(|e| e.trim_matches('"').to_string())
                .filter(|e| !e.is_empty()),
            size: s3.object.size,
        })
        .collect();
    Notification::Objects(objects)
}

/// [`parse`], also through an SNS notification (S3 → SNS topic → queue, the usual fan-out).
pub fn parse_maybe_in_sns(body: &str) -> Notification {
    match parse(body) {
        Notification::NotS3 if body.contains("\"TopicArn\"") && body.contains("Records") => {
            #[derive(Deserialize)]
            struct Sns {
                #[serde(rename = "Type")]
                kind: String,
                #[serde(rename = "Message")]
                message: String,
            }
            match serde_json::from_str::<Sns>(body) {
                Ok(sns) if sns.kind == "Notification" => parse(&sns.message),
                _ => Notification::NotS3,
            }
        }
        read => read,
    }
}

/// An S3 notification's key: URL-encoded, `+` for a space.
fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATED: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3",
        "awsRegion":"us-east-1","eventTime":"2026-12-01T10:00:00.000Z","eventName":"ObjectCreated:Put",
        "s3":{"s3SchemaVersion":"1.0","bucket":{"name":"history","arn":"arn:aws:s3:::history"},
        "object":{"key":"logins/2026/day+1%2Fa%C3%A9.ndjson.gz","size":1024,
        "eTag":"\"0123abcd\"","versionId":"v-7","sequencer":"0055AED6DCD90281E5"}}}]}"#;

    #[test]
    fn a_created_object_is_named_with_its_decoded_key_and_identity() {
        let Notification::Objects(objects) = parse(CREATED) else {
            panic!("not read as objects");
        };
        assert_eq!(
            objects,
            vec![ObjectRef {
                bucket: "history".into(),
                key: "logins/2026/day 1/aé.ndjson.gz".into(),
                version_id: Some("v-7".into()),
                etag: Some("0123abcd".into()),
                size: Some(1024),
            }]
        );
    }

    #[test]
    fn the_test_event_and_other_events_name_nothing() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-12-01T10:00:00Z",
            "Bucket":"history","RequestId":"r","HostId":"h"}"#;
        assert_eq!(parse(test), Notification::Test);
        let removed = CREATED.replace("ObjectCreated:Put", "ObjectRemoved:Delete");
        assert_eq!(parse(&removed), Notification::Objects(vec![]));
    }

    #[test]
    fn a_notification_in_an_sns_notification_is_read_too() {
        let sns = serde_json::json!({"Type": "Notification", "MessageId": "m",
            "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": CREATED})
        .to_string();
        assert_eq!(parse_maybe_in_sns(&sns), parse(CREATED));
        let login = serde_json::json!({"Type": "Notification", "TopicArn": "t",
            "Message": r#"{"user_id":"u","Records":1}"#})
        .to_string();
        assert_eq!(parse_maybe_in_sns(&login), Notification::NotS3);
    }

    #[test]
    fn logins_and_look_alikes_are_not_s3() {
        for body in [
            r#"{"user_id":"u","ip":"198.51.100.1","device_id":"d"}"#,
            r#"[{"Records":[]}]"#,
            r#"{"Records":[{"eventSource":"aws:sqs"}]}"#,
            r#"{"Records":"not a list"}"#,
            r#"{"Event":"s3:TestEvent"}"#,
            "not json",
            "",
        ] {
            assert_eq!(parse(body), Notification::NotS3, "{body}");
        }
    }
}
