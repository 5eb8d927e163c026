//! The S3 source under faults (an attack review of issue 34's first part): content that is
//! corrupt or cut short is quarantined from where it breaks, never lost and never retried for
//! ever; requests S3 refuses for good are quarantined; a version overwritten in place is not read
//! under the old content's ids; flags meant for messages do not reshape chunks; SNS-wrapped
//! notifications are read; a key's text never reaches a stored reason; SIGTERM stops reading.

use std::time::Duration;

use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use login_etl::source::s3::{Chunks, Limits, Piece};
use serde_json::json;

use crate::helpers::*;

const LIMITS: Limits = Limits {
    max_logins: 1000,
    max_bytes: 1 << 20,
    max_line: 256 << 10,
};

fn login(i: usize) -> String {
    json!({
        "user_id": format!("s3f-user-{i}"), "ip": format!("198.51.{}.{}", i / 250, i % 250),
        "device_id": format!("s3f-dev-{i}"), "device_type": "ios", "locale": "NZ",
        "app_version": "2.3.0"
    })
    .to_string()
}

fn gzip(text: &str) -> Vec<u8> {
    gzip_members(&[text])
}

fn ndjson(n: usize) -> String {
    (0..n).map(login).collect::<Vec<_>>().join("\n") + "\n"
}

async fn rows(db: &TestDb) -> i64 {
    db.scalar("SELECT count(*) FROM user_logins").await
}

async fn entries(db: &TestDb) -> Vec<(String, String, i32)> {
    let client = db.client().await;
    (client.query(
        "SELECT reason_code, reason, element FROM quarantined_messages ORDER BY reason",
        &[],
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// A gzip whose trailer is wrong: the 1,500 logins before it all come out, then the error.
#[tokio::test]
async fn a_corrupt_gzip_trailer_keeps_the_chunk_being_filled() {
    let mut raw = gzip(&ndjson(1500));
    let n = raw.len();
    raw[n - 8] ^= 0xff;
    let mut chunks = Chunks::open(std::io::Cursor::new(raw), LIMITS)
        .await
        .unwrap();
    let mut covered = 0;
    let error = loop {
        match chunks.next().await {
            Ok(Some(Piece::Logins { count, .. })) => covered += count,
            Ok(other) => panic!("{other:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(covered, 1500);
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
}

/// Corrupt and cut-short content: every login before the break lands, the rest is one
/// `unreadable_object` entry from its line, in the first drain, and the notification is gone.
#[tokio::test(flavor = "multi_thread")]
async fn corrupt_or_cut_short_content_is_quarantined_from_where_it_breaks() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    let bucket = TestBucket::new(&queue).await;
    let mut corrupt = gzip(&ndjson(1500));
    let n = corrupt.len();
    corrupt[n - 8] ^= 0xff;
    let whole = gzip(&ndjson(500));
    let cut = whole[..whole.len() / 2].to_vec();
    let etags = [
        bucket.put("crc.ndjson.gz", corrupt).await,
        bucket.put("cut.ndjson.gz", cut).await,
    ];
    queue
        .send(&[
            bucket.notification("crc.ndjson.gz", &etags[0]),
            bucket.notification("cut.ndjson.gz", &etags[1]),
        ])
        .await;
    run_drain(&queue, &db, &[]);
    let found = entries(&db).await;
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found.iter().all(|(code, _, _)| code == "unreadable_object"),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(_, reason, _)| reason.contains("from line 1501 on")),
        "{found:?}"
    );
    let landed = rows(&db).await;
    assert!((1500..2000).contains(&landed), "{landed}");
    assert_eq!(queue.remaining().await, 0, "not retried for ever");
}

/// A request S3 refuses for good (a version id that is none) is quarantined, not retried.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_s3_refuses_for_good_is_quarantined() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    let bucket = TestBucket::new(&queue).await;
    let etag = bucket.put("v.ndjson", ndjson(5).into_bytes()).await;
    let bad_version =
        json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket.name}, "object": {"key": "v.ndjson", "eTag": etag,
        "versionId": "not-a-version", "size": 1}}}]})
        .to_string();
    queue.send(&[bad_version]).await;
    run_drain(&queue, &db, &[]);
    let found = entries(&db).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(queue.remaining().await, 0);
}

/// A versioning-suspended bucket writes every object as version "null", in place: the first
/// notification is not read under its ids with the second content (which would land twice).
#[tokio::test(flavor = "multi_thread")]
async fn a_null_version_written_again_lands_once() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let bucket = TestBucket::new(&queue).await;
    (bucket.client.put_bucket_versioning())
        .bucket(&bucket.name)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let first = bucket.put("n.ndjson", ndjson(10).into_bytes()).await;
    let second_body: String = (100..120).map(login).collect::<Vec<_>>().join("\n");
    let second = bucket.put("n.ndjson", second_body.into_bytes()).await;
    let notification = |etag: &str| {
        json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket.name}, "object": {"key": "n.ndjson", "eTag": etag,
            "versionId": "null", "size": 1}}}]})
        .to_string()
    };
    queue
        .send(&[notification(&first), notification(&second)])
        .await;
    run_drain(&queue, &db, &[]);
    assert_eq!(rows(&db).await, 20);
    let found = entries(&db).await;
    assert!(
        found.iter().any(|(_, r, _)| r.contains("written again")),
        "{found:?}"
    );
}

/// Chunks are the chunking's own: `--max-logins-per-message` below their size and
/// `--envelope none` (meant for messages) do not refuse them.
#[tokio::test(flavor = "multi_thread")]
async fn message_flags_do_not_reshape_chunks() {
    for flags in [["--max-logins-per-message", "100"], ["--envelope", "none"]] {
        let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
        let bucket = TestBucket::new(&queue).await;
        let etag = bucket.put("many.ndjson", ndjson(300).into_bytes()).await;
        queue
            .send(&[bucket.notification("many.ndjson", &etag)])
            .await;
        run_drain(&queue, &db, &flags);
        assert_eq!(rows(&db).await, 300, "{flags:?}: {:?}", entries(&db).await);
    }
}

/// S3 → SNS → SQS: the notification arrives inside an SNS one and is read all the same.
#[tokio::test(flavor = "multi_thread")]
async fn a_notification_through_sns_is_read() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let bucket = TestBucket::new(&queue).await;
    let etag = bucket.put("sns.ndjson", ndjson(10).into_bytes()).await;
    let sns = json!({"Type": "Notification", "MessageId": "m-1",
        "TopicArn": "arn:aws:sns:us-east-1:000000000000:t", "Subject": "Amazon S3 Notification",
        "Message": bucket.notification("sns.ndjson", &etag),
        "Timestamp": "2026-12-01T10:00:00.000Z"})
    .to_string();
    queue.send(&[sns]).await;
    run_drain(&queue, &db, &[]);
    assert_eq!(rows(&db).await, 10, "{:?}", entries(&db).await);
}

/// Addresses and device ids in unreadable lines and in an object's key reach neither the log nor
/// any table (a reason names the key by its hash).
#[tokio::test(flavor = "multi_thread")]
async fn no_raw_value_from_unreadable_lines_or_keys() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let bucket = TestBucket::new(&queue).await;
    let mut body: Vec<u8> = Vec::new();
    body.extend(login(1).as_bytes());
    body.extend(b"\n203.0.113.77 dev-SECRET-1 not json\n");
    body.extend(
        b"{\"user_id\":\"u\",\"ip\":\"203.0.113.78\",\"device_id\":\"dev-SECRET-2\",\xff\xfe}\n",
    );
    let pad = "p".repeat(300 << 10);
    body.extend(
        format!("{{\"ip\":\"203.0.113.79\",\"device_id\":\"dev-SECRET-3\",\"pad\":\"{pad}\"}}\n")
            .as_bytes(),
    );
    body.extend(b"{\"user_id\":\"u\",\"ip\":\"203.0.113.80\",\"device_id\":\"dev-SECRET-4\"\n");
    body.extend(login(2).as_bytes());
    let etag = bucket.put("pii.ndjson", body).await;
    queue
        .send(&[
            bucket.notification("pii.ndjson", &etag),
            bucket.notification("devices/dev-SECRET-9/203.0.113.99.ndjson", "00"),
        ])
        .await;
    let out = run_drain(&queue, &db, &[]);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    let dump = db.dump_all_tables().await;
    for secret in ["203.0.113.", "dev-SECRET-"] {
        let leak: Vec<&str> = log.lines().filter(|l| l.contains(secret)).collect();
        assert!(leak.is_empty(), "{secret} in the log: {leak:?}");
        assert!(!dump.contains(secret), "{secret} in the database");
    }
    assert_eq!(rows(&db).await, 2);
}

/// SIGTERM while an object is read: reading stops (the process does not read the whole object
/// first), and the next run lands the rest, every login once.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_reading_and_the_rest_lands_once_later() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    db.sink().migrate().await.unwrap();
    let bucket = TestBucket::new(&queue).await;
    let n = 60_000;
    let etag = bucket.put("long.ndjson", ndjson(n).into_bytes()).await;
    queue
        .send(&[bucket.notification("long.ndjson", &etag)])
        .await;
    slow_down_copy(&db, 1).await;
    let mut run = Spawned::new(binary(&queue, &db).args(["run", "--batch-size", "2"]));
    wait_until("a commit", Duration::from_secs(120), || async {
        rows(&db).await >= 1000
    })
    .await;
    run.sigterm();
    let status = run.wait(Duration::from_secs(300)).await;
    assert!(status.success(), "{status:?}");
    let at_exit = rows(&db).await;
    assert!(
        at_exit < n as i64,
        "the whole object was read after SIGTERM"
    );
    assert_eq!(land_the_rest(&db, &queue).await, (n as i64, n as i64));
    assert_eq!(object_progress(&db).await, vec![(n as i64, 60, true)]);
}

/// Writes at full speed again, and what the stopped consumer left landed by another once its
/// messages are visible again: (rows, distinct devices).
async fn land_the_rest(db: &TestDb, queue: &TestQueue) -> (i64, i64) {
    (db.client().await)
        .batch_execute("DROP TRIGGER IF EXISTS slow_copy ON user_logins")
        .await
        .unwrap();
    queue.until_none_in_flight().await;
    run_drain(queue, db, &[]);
    let distinct: i64 = db
        .scalar("SELECT count(DISTINCT masked_device_id) FROM user_logins")
        .await;
    (rows(db).await, distinct)
}

/// A consumer killed (SIGKILL) in the middle of a gzip'd object of several members, and another
/// one notified twice: every login lands once, and what `s3_objects` counted is exact.
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_in_the_middle_of_an_object_lands_every_login_once() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(10).await);
    db.sink().migrate().await.unwrap();
    let bucket = TestBucket::new(&queue).await;
    let lines: Vec<String> = (0..30_000).map(login).collect();
    let members: Vec<String> = lines.chunks(7_001).map(|c| c.join("\n") + "\n").collect();
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    let big = bucket.put("big.ndjson.gz", gzip_members(&members)).await;
    let others: Vec<String> = (40_000..40_010).map(login).collect();
    let small = bucket
        .put("small.ndjson", others.join("\n").into_bytes())
        .await;
    queue
        .send(&[
            bucket.notification("big.ndjson.gz", &big),
            bucket.notification("small.ndjson", &small),
            bucket.notification("small.ndjson", &small),
        ])
        .await;
    slow_down_copy(&db, 1).await;
    let mut run = Spawned::new(binary(&queue, &db).args(["run", "--batch-size", "2"]));
    wait_until("a commit", Duration::from_secs(120), || async {
        rows(&db).await >= 2000
    })
    .await;
    run.kill9();
    let at_kill = rows(&db).await;
    assert!(
        at_kill < 30_000,
        "the whole object was read before the kill"
    );
    assert_eq!(land_the_rest(&db, &queue).await, (30_010, 30_010));
    let mut counted = object_progress(&db).await;
    counted.sort();
    assert_eq!(counted, vec![(10, 1, true), (30_000, 30, true)]);
    assert_eq!(queue.remaining().await, 0);
}

/// Kinesis Data Firehose's default delivery: records back to back, no line breaks, gzip'd; one
/// of them refused. Every other login lands, the refused one alone is quarantined by its number.
#[tokio::test(flavor = "multi_thread")]
async fn a_firehose_delivery_of_records_back_to_back_lands_every_login() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let bucket = TestBucket::new(&queue).await;
    let mut records: Vec<String> = (0..2_500).map(login).collect();
    records[1_234] = json!({"user_id": "s3f-bad", "ip": "198.51.100.7"}).to_string();
    let etag = bucket
        .put("firehose/2026/12/05/01/stream-1", gzip(&records.concat()))
        .await;
    queue
        .send(&[bucket.notification("firehose/2026/12/05/01/stream-1", &etag)])
        .await;
    let out = run_drain(&queue, &db, &[]);
    assert_eq!(
        rows(&db).await,
        2_499,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its entry: the chunk from record 1001 on, element 234 of it (record 1235).
    let entries: Vec<(String, i32)> = (db.client().await)
        .query("SELECT message_id, element FROM quarantined_messages", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        entries[0].0.ends_with(":1001") && entries[0].1 == 234,
        "{entries:?}"
    );
}
