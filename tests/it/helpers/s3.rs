//! LocalStack's S3 for the S3 source's tests: a client, a bucket of a test's own, gzip members.

use std::io::Write;

use aws_sdk_s3::primitives::ByteStream;
use flate2::write::GzEncoder;

use super::{unique, TestQueue};

/// An S3 client on `endpoint` (path-style, test credentials).
pub(crate) async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "t",
        ))
        .load()
        .await;
    let config = aws_sdk_s3::config::Builder::from(&config).force_path_style(true);
    aws_sdk_s3::Client::from_conf(config.build())
}

/// Each part compressed as a gzip member of its own, one after the other.
pub(crate) fn gzip_members(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(part.as_bytes()).unwrap();
        out.extend(gz.finish().unwrap());
    }
    out
}

/// A bucket of a test's own on the queue's LocalStack.
pub(crate) struct TestBucket {
    pub(crate) client: aws_sdk_s3::Client,
    pub(crate) name: String,
}

impl TestBucket {
    pub(crate) async fn new(queue: &TestQueue) -> Self {
        let client = s3_client(&queue.endpoint).await;
        let name = unique("bucket").to_lowercase().replace('_', "-");
        client.create_bucket().bucket(&name).send().await.unwrap();
        TestBucket { client, name }
    }

    /// Put an object; its ETag (without quotes).
    pub(crate) async fn put(&self, key: &str, body: Vec<u8>) -> String {
        let out = (self.client.put_object())
            .bucket(&self.name)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        out.e_tag.unwrap().trim_matches('"').to_string()
    }

    /// What S3 would send for `key` (a plain ASCII key needs no encoding).
    pub(crate) fn notification(&self, key: &str, etag: &str) -> String {
        serde_json::json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": self.name}, "object": {"key": key, "eTag": etag, "size": 1}}}]})
        .to_string()
    }
}

/// What `s3_objects` counted of each object: (logins, chunks, read to its end).
pub(crate) async fn object_progress(db: &super::TestDb) -> Vec<(i64, i32, bool)> {
    (db.client().await)
        .query(
            "SELECT logins, chunks, finished_at IS NOT NULL FROM s3_objects ORDER BY object_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}
