//! `s3_objects` finishes every object it registers (an attack review of issue 34's progress): an
//! object of `[]` or an empty gzip is accounted for, and a connection dropped after an object's
//! last byte (its last chunk committed as not the last) still finishes it when read again; one
//! dropped in the middle of a chunk loses nothing of it.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

fn login(i: usize) -> String {
    json!({
        "user_id": format!("a34-user-{i}"), "ip": format!("203.0.{}.{}", (i / 250) % 250, i % 250),
        "device_id": format!("a34-dev-{i}"), "device_type": "ios", "locale": "NZ",
        "app_version": "2.3.0"
    })
    .to_string()
}

/// An object of `[]` (no line break) or a gzip of nothing, which `backfill` registers (its size is
/// not 0): one `unreadable_object` entry each, so every object finishes and `--wait` returns.
/// (Before, both were read as nothing and stayed "not started" for ever.)
#[tokio::test(flavor = "multi_thread")]
async fn an_object_of_an_empty_array_or_gzip_finishes_its_backfill() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(5).await);
    db.sink().migrate().await.unwrap();
    let bucket = TestBucket::new(&queue).await;
    bucket.put("p/a.ndjson", login(1).into_bytes()).await;
    bucket.put("p/empty-array.json", b"[]".to_vec()).await;
    bucket.put("p/empty.gz", gzip_members(&[""])).await;
    let location = format!("s3://{}/p/", bucket.name);
    let out = run_ok(binary(&queue, &db).args(["backfill", &location]));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("enqueued 3 objects"), "{said}");
    run_drain(&queue, &db, &[]);
    queue.until_none_in_flight().await;
    assert_eq!(queue.remaining().await, 0);
    let counted = object_progress(&db).await;
    // --wait, bounded here, with a consumer running: it must end once the consumer is done.
    let mut consumer = Spawned::new(binary(&queue, &db).args(["run"]));
    let mut waiting = Spawned::new(binary(&queue, &db).args(["backfill", &location, "--wait"]));
    let status = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(Some(status)) = waiting.child.try_wait() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let ended = status.is_ok();
    if !ended {
        waiting.kill9();
    }
    consumer.kill9();
    assert!(
        counted.iter().all(|(_, _, finished)| *finished) && ended,
        "objects (logins, chunks, finished): {counted:?}; backfill --wait ended: {ended}; {}",
        waiting.stdout()
    );
}

/// A transient read error after the object's last byte (the connection drops at its end) sends
/// the last chunk as not the last; it commits, the notification comes back, and the re-read
/// finds every chunk committed already: the last one, a duplicate now, still finishes the object.
/// (Before, it stayed "in flight" for ever.)
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_dropped_after_the_last_byte_still_finishes_the_object() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    db.sink().migrate().await.unwrap();
    let body = ((0..10).map(login).collect::<Vec<_>>().join("\n") + "\n").into_bytes();
    let endpoint = FakeS3::start(
        body,
        Breaks {
            cut: 1,
            partial: usize::MAX,
            ranges: false,
            lie: Lie::None,
        },
    )
    .await
    .endpoint;
    let notification = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "fake-bucket"}, "object": {"key": "k.ndjson", "eTag": "abc", "size": 1}}}]})
    .to_string();
    queue.send(&[notification]).await;
    for _ in 0..3 {
        let out = run_ok(
            binary(&queue, &db)
                .env("AWS_ENDPOINT_URL_S3", &endpoint)
                .args(["run", "--drain"]),
        );
        let _ = out;
        queue.until_none_in_flight().await;
        if queue.remaining().await == 0 {
            break;
        }
    }
    assert_eq!(queue.remaining().await, 0);
    let rows: i64 = db.scalar("SELECT count(*) FROM user_logins").await;
    assert_eq!(rows, 10);
    assert_eq!(
        object_progress(&db).await,
        vec![(10, 1, true)],
        "(logins, chunks, finished) of the object read to its end"
    );
}

/// A connection dropped in the middle of a chunk: the part read is not committed under the
/// chunk's id, so the healthy re-read's chunk (lines 1001..2000) lands whole. (Before, lines
/// 1001..~1500 committed as chunk 1001 and the re-read's chunk 1001 was skipped as a duplicate:
/// the lines after the cut were lost.)
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_dropped_mid_chunk_loses_nothing() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    db.sink().migrate().await.unwrap();
    let lines: Vec<String> = (0..2500).map(login).collect();
    let body = (lines.join("\n") + "\n").into_bytes();
    let cut_at = lines[..1500].iter().map(|l| l.len() + 1).sum::<usize>() + 10;
    let endpoint = FakeS3::start(
        body,
        Breaks {
            cut: 1,
            partial: cut_at,
            ranges: false,
            lie: Lie::None,
        },
    )
    .await
    .endpoint;
    let notification = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "fake-bucket"}, "object": {"key": "k.ndjson", "eTag": "abc", "size": 1}}}]})
    .to_string();
    queue.send(&[notification]).await;
    for _ in 0..4 {
        run_ok(
            binary(&queue, &db)
                .env("AWS_ENDPOINT_URL_S3", &endpoint)
                .args(["run", "--drain"]),
        );
        queue.until_none_in_flight().await;
        if queue.remaining().await == 0 {
            break;
        }
    }
    assert_eq!(queue.remaining().await, 0);
    let rows: i64 = db.scalar("SELECT count(*) FROM user_logins").await;
    let entries: i64 = db.scalar("SELECT count(*) FROM quarantined_messages").await;
    assert_eq!(
        (rows, entries, object_progress(&db).await),
        (2500, 0, vec![(2500, 3, true)]),
        "(rows, quarantine entries, (logins, chunks, finished))"
    );
}

/// A download that breaks off again and again (as LocalStack's does after about 84 s, or a
/// network's): each break is resumed from the byte reached (`Range`, `If-Match` on the first
/// reply's ETag), in the middle of a gzip member, and the object is read in one go: every login
/// once, nothing quarantined, the notification deleted by the first run.
#[tokio::test(flavor = "multi_thread")]
async fn a_download_that_breaks_off_resumes_from_the_byte_reached() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    db.sink().migrate().await.unwrap();
    let parts: Vec<String> = (0..5)
        .map(|m| {
            (m * 1000..(m + 1) * 1000)
                .map(login)
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        })
        .collect();
    let body = gzip_members(&parts.iter().map(String::as_str).collect::<Vec<_>>());
    let partial = body.len() / 4 + 7;
    let breaks = Breaks {
        cut: 3,
        partial,
        ranges: true,
        lie: Lie::None,
    };
    let fake = FakeS3::start(body, breaks).await;
    let notification = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "fake-bucket"}, "object": {"key": "k.ndjson.gz", "eTag": "abc", "size": 1}}}]})
    .to_string();
    queue.send(&[notification]).await;
    run_ok(
        binary(&queue, &db)
            .env("AWS_ENDPOINT_URL_S3", &fake.endpoint)
            .args(["run", "--drain"]),
    );
    queue.until_none_in_flight().await;
    let p = partial as u64;
    let rows: i64 = db.scalar("SELECT count(*) FROM user_logins").await;
    let users: i64 = db
        .scalar("SELECT count(DISTINCT user_id) FROM user_logins")
        .await;
    let entries: i64 = db.scalar("SELECT count(*) FROM quarantined_messages").await;
    assert_eq!(
        (fake.asked(), queue.remaining().await, rows, users, entries),
        (vec![0, p, 2 * p, 3 * p], 0, 5000, 5000, 0),
        "(first byte of each GET, notifications left, rows, users, quarantine entries)"
    );
    assert_eq!(object_progress(&db).await, vec![(5000, 5, true)]);
}

/// A receive that brings several S3 notifications keeps one and hands the others back at once,
/// so other consumers read them meanwhile: with one receiver stuck on its first object (an S3
/// that never answers), the other three notifications are visible on the queue again. (Before,
/// all four stayed held by that receiver until it had read them one after the other.)
#[tokio::test(flavor = "multi_thread")]
async fn notifications_received_together_are_shared_with_other_consumers() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    db.sink().migrate().await.unwrap();
    // Connections are taken (the backlog) but never answered.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let notifications: Vec<String> = (0..4)
        .map(|i| {
            json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "fake-bucket"}, "object": {"key": format!("k{i}"), "eTag": "abc", "size": 1}}}]})
            .to_string()
        })
        .collect();
    queue.send(&notifications).await;
    let mut consumer = Spawned::new(
        binary(&queue, &db)
            .env("AWS_ENDPOINT_URL_S3", &endpoint)
            .args(["run", "--receivers", "1"]),
    );
    let source = &queue.source;
    let shared = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let depth = source.depth().await.unwrap();
            if (depth.visible, depth.in_flight) == (3, 1) {
                return depth;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let depth = source.depth().await.unwrap();
    consumer.kill9();
    drop(silent);
    assert!(
        shared.is_ok(),
        "(visible, in flight) = ({}, {}), not (3, 1)",
        depth.visible,
        depth.in_flight
    );
}
