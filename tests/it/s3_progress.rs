//! `s3_objects` finishes every object it registers (an attack review of issue 34's progress): an
//! object of `[]` or an empty gzip is accounted for, and a connection dropped after an object's
//! last byte (its last chunk committed as not the last) still finishes it when read again; one
//! dropped in the middle of a chunk loses nothing of it.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

fn login(i: usize) -> String {
    json!({
        "user_id": format!("a34-user-{i}"), "ip": format!("203.0.{}.{}", (i / 250) % 250, i % 250),
        "device_id": format!("a34-dev-{i}"), "device_type": "ios", "locale": "NZ",
        "app_version": "2.3.0"
    })
    .to_string()
}

async fn object_progress(db: &TestDb) -> Vec<(i64, i32, bool)> {
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

/// A fake S3 that serves `body` for any GET; the first `cut` responses announce more bytes
/// than they send and close the connection (a connection dropped at the object's very end).
async fn fake_s3(body: Vec<u8>, cut: usize) -> String {
    fake_s3_sending(body, cut, usize::MAX).await
}

/// As [`fake_s3`], the cut responses sending only the first `partial` bytes.
async fn fake_s3_sending(body: Vec<u8>, cut: usize, partial: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            let served = served.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let n = served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let announced = if n < cut {
                    body.len() + 100
                } else {
                    body.len()
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {announced}\r\n\
                     Content-Type: application/octet-stream\r\n\
                     Last-Modified: Sat, 05 Dec 2026 00:00:00 GMT\r\nETag: \"abc\"\r\n\
                     Connection: close\r\n\r\n"
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let sent = if n < cut {
                    partial.min(body.len())
                } else {
                    body.len()
                };
                let _ = stream.write_all(&body[..sent]).await;
                let _ = stream.flush().await;
                if n < cut {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://127.0.0.1:{port}")
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
    let endpoint = fake_s3(body, 1).await;
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
    let endpoint = fake_s3_sending(body, 1, cut_at).await;
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
