//! S3 objects as a source (issue 34), against LocalStack's S3 sending real bucket notifications
//! to the queue: NDJSON gzip'd in several members and a pretty-printed JSON array land every
//! valid login once; a bad line is quarantined alone with its object and line; a line too long
//! and an object that is gone are `unreadable_object` entries, not stops; S3's test event is
//! dropped; a notification delivered again (the same object named twice) adds nothing.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;

use crate::audit_roles::role_from;
use crate::helpers::*;

fn login(i: usize) -> String {
    json!({
        "user_id": format!("s3-user-{i}"), "ip": format!("198.51.{}.{}", i / 250, i % 250),
        "device_id": format!("s3-dev-{i}"), "device_type": "ios", "locale": "NZ",
        "app_version": "2.3.0"
    })
    .to_string()
}

async fn rows(db: &TestDb) -> i64 {
    db.scalar("SELECT count(*) FROM user_logins").await
}

async fn entries(db: &TestDb) -> Vec<(String, String)> {
    let client = db.client().await;
    (client.query(
        "SELECT reason_code, reason FROM quarantined_messages ORDER BY reason",
        &[],
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_named_by_notifications_land_every_login_once() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let s3 = s3_client(&queue.endpoint).await;
    let bucket = unique("history").to_lowercase().replace('_', "-");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let arn = (login_etl::source::sqs::client(&queue.settings()).await)
        .get_queue_attributes()
        .queue_url(queue.source.queue_url())
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let notify = QueueConfiguration::builder()
        .queue_arn(arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .build()
        .unwrap();
    (s3.put_bucket_notification_configuration())
        .bucket(&bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(notify)
                .build(),
        )
        .send()
        .await
        .unwrap();

    // 2,500 lines in three gzip members: two refused (invalid fields, cut short), three chunks.
    let mut lines: Vec<String> = (0..2500).map(login).collect();
    lines[700] = json!({"user_id": "s3-bad", "ip": "198.51.100.9"}).to_string();
    lines[1800] = login(1800)[..30].to_string();
    let members: Vec<String> = lines.chunks(900).map(|c| c.join("\n") + "\n").collect();
    let put = |key: &str, body: Vec<u8>| {
        (s3.put_object())
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
    };
    put(
        "logs/day 1/a.ndjson.gz",
        gzip_members(&members.iter().map(String::as_str).collect::<Vec<_>>()),
    )
    .await
    .unwrap();
    // A pretty-printed array of five, and NDJSON with a line longer than a login may be.
    let array = serde_json::to_string_pretty(
        &(3000..3005)
            .map(|i| serde_json::from_str(&login(i)).unwrap())
            .collect::<Vec<serde_json::Value>>(),
    )
    .unwrap();
    put("logs/b.json", array.into_bytes()).await.unwrap();
    let long = format!(r#"{{"user_id":"{}"}}"#, "x".repeat(300 << 10));
    put(
        "logs/c.ndjson",
        format!("{}\n{long}\n{}\n", login(4000), login(4001)).into_bytes(),
    )
    .await
    .unwrap();
    // The test event and three notifications.
    wait_until("S3 notified the queue", Duration::from_secs(60), || async {
        queue.source.depth().await.unwrap().visible >= 4
    })
    .await;
    let out = run_drain(&queue, &db, &[]);
    let printed = String::from_utf8_lossy(&out.stderr);
    assert_eq!(rows(&db).await, 2498 + 5 + 2, "{printed}");
    let found = entries(&db).await;
    let codes: Vec<&str> = found.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(codes.len(), 3, "{found:?}");
    assert!(
        codes.contains(&"invalid_fields") && codes.contains(&"invalid_json"),
        "{found:?}"
    );
    let unreadable = (found.iter())
        .find(|(c, _)| c == "unreadable_object")
        .unwrap();
    // The key is named by its hash: a key may hold anything.
    let (named, line) = (format!("s3://{bucket}/<key "), ">: line 2 is ");
    assert!(
        unreadable.1.starts_with(&named) && unreadable.1.contains(line),
        "{unreadable:?}"
    );
    assert_eq!(queue.remaining().await, 0, "every notification deleted");
    assert!(!printed.contains("198.51."), "no raw address in the log");

    // The same object named again (a notification delivered twice), and one that is gone.
    let etag = (s3
        .head_object()
        .bucket(&bucket)
        .key("logs/day 1/a.ndjson.gz"))
    .send()
    .await
    .unwrap()
    .e_tag
    .unwrap();
    let notification = |key: &str, etag: &str| {
        json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key, "eTag": etag, "size": 1}}}]})
        .to_string()
    };
    queue
        .send(&[
            notification("logs/day+1/a.ndjson.gz", &etag),
            notification("logs/gone.ndjson", "0123"),
        ])
        .await;
    run_drain(&queue, &db, &[]);
    assert_eq!(rows(&db).await, 2498 + 5 + 2, "nothing twice");
    let found = entries(&db).await;
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(
        (found.iter())
            .any(|(c, r)| c == "unreadable_object" && r.contains(">: the object is gone")),
        "{found:?}"
    );
    assert_eq!(queue.remaining().await, 0);
}

/// `backfill` puts one notification per object under the prefix on the queue (`--since` on
/// LastModified, `--dry-run` counts, empty objects skipped); the consumers read them as live
/// ones; `status` counts what each object gave, exactly; a second backfill of the same prefix
/// enqueues nothing; `--wait` follows the consumers to the end.
#[tokio::test(flavor = "multi_thread")]
async fn backfill_loads_a_prefix_once_however_often_it_runs() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let s3 = s3_client(&queue.endpoint).await;
    let bucket = unique("backfill").to_lowercase().replace('_', "-");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    db.sink().migrate().await.unwrap();
    // backfill as the operator role, run as the writer role, each with its documented grants.
    let file = include_str!("../../docs/least-privilege-operator.sql");
    let (_, operator) = role_from(&db, file, "login_etl_operator", "s3_op").await;
    let (_, writer) = least_privilege_role(&db, "s3_writer").await;
    let put = |key: &str, body: Vec<u8>| {
        (s3.put_object())
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
    };
    let ndjson = |r: std::ops::Range<usize>| r.map(login).collect::<Vec<_>>().join("\n");
    put("old/a.ndjson", ndjson(0..3).into_bytes())
        .await
        .unwrap();
    put("other/skipped.ndjson", login(99).into_bytes())
        .await
        .unwrap();
    put("old/_SUCCESS", vec![]).await.unwrap();
    put("old/nothing.json", b" [ ]\n".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let since = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put("old/b c.ndjson.gz", gzip_members(&[&ndjson(3..6)]))
        .await
        .unwrap();
    let location = format!("s3://{bucket}/old/");
    let backfill = |extra: &[&str]| {
        let mut cmd = binary_for(&queue, &operator);
        cmd.args(["backfill", &location]).args(extra);
        String::from_utf8_lossy(&run_ok(&mut cmd).stdout).into_owned()
    };
    let counted = backfill(&["--dry-run", "--since", &since]);
    assert!(
        counted.starts_with("would enqueue 1 objects (") && !counted.contains("skipped"),
        "{counted}"
    );
    assert_eq!(queue.remaining().await, 0, "a dry run enqueues nothing");
    let enqueued = backfill(&[]);
    assert!(
        enqueued.starts_with("backfill 1: enqueued 3 objects (")
            && enqueued.contains("(skipped: 1 empty)"),
        "{enqueued}"
    );
    run_ok(binary_for(&queue, &writer).args(["run", "--drain"]));
    assert_eq!(rows(&db).await, 6);
    // An object of no logins is said, once, with its key's hash; an empty one is not read.
    let found = entries(&db).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].1.ends_with(
            ">: the object holds no logins (blank lines, an empty array, or an empty gzip)"
        ),
        "{found:?}"
    );
    let status = |db: &TestDb| {
        let out = run_ok(binary(&queue, db).args(["status", "--format", "json"]));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["s3"].clone()
    };
    let first = &status(&db)["backfills"][0];
    assert_eq!(
        (&first["objects"], &first["done"], &first["done_logins"]),
        (&json!(3), &json!(3), &json!(7)),
        "{first}"
    );
    assert_eq!(
        (&first["in_flight"], &first["left"]),
        (&json!(0), &json!(0))
    );

    let again = backfill(&[]);
    assert!(
        again.starts_with("backfill 2: enqueued 0 objects (0 bytes)")
            && again.contains("(skipped: 3 read already, 1 empty)"),
        "{again}"
    );
    assert_eq!(
        queue.remaining().await,
        0,
        "a second backfill enqueues nothing"
    );

    // --wait follows a consumer that starts after it to the end.
    put("old/d.ndjson", ndjson(6..8).into_bytes())
        .await
        .unwrap();
    let mut waiting = binary_for(&queue, &operator);
    waiting
        .args(["backfill", &location, "--wait"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let waiting = waiting.spawn().unwrap();
    wait_until(
        "the third backfill enqueued",
        Duration::from_secs(60),
        || async { queue.source.depth().await.unwrap().visible >= 1 },
    )
    .await;
    run_ok(binary_for(&queue, &writer).args(["run", "--drain"]));
    let out = waiting.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("backfill 3: enqueued 1 objects")
            && said.contains("backfill 3: 1 objects read, 2 logins"),
        "{said}"
    );
    assert_eq!(rows(&db).await, 8);
    assert_eq!(status(&db)["notified_by_s3"]["objects"], json!(0));
    assert_eq!(queue.remaining().await, 0);
}

/// A database whose roles were made before migration 19: when it runs, the writers (who may
/// write the ledger) may count chunks and the operators (who may erase) may register backfills.
#[tokio::test(flavor = "multi_thread")]
async fn roles_made_before_migration_19_get_its_grants() {
    let db = TestDb::new().await;
    db.sink().migrate().await.unwrap();
    let client = db.client().await;
    (client.batch_execute(
        "DROP TABLE s3_objects, s3_backfills; \
         DELETE FROM login_etl_schema_migrations WHERE version = 19",
    ))
    .await
    .unwrap();
    let before_19 = |file: &str| -> String {
        (file.split_inclusive(';'))
            .filter(|statement| !statement.contains("s3_"))
            .collect()
    };
    let (writer, _) = role_from(
        &db,
        &before_19(include_str!("../../docs/least-privilege.sql")),
        "login_etl_writer",
        "old_writer",
    )
    .await;
    let (operator, _) = role_from(
        &db,
        &before_19(include_str!("../../docs/least-privilege-operator.sql")),
        "login_etl_operator",
        "old_op",
    )
    .await;
    db.sink().migrate().await.unwrap();
    let granted: Vec<bool> = (client.query_one(
        "SELECT has_column_privilege($1, 's3_objects', 'logins', 'SELECT, INSERT, UPDATE'), \
                has_column_privilege($1, 's3_objects', 'bucket', 'UPDATE'), \
                has_column_privilege($2, 's3_backfills', 'prefix', 'INSERT'), \
                has_column_privilege($2, 's3_objects', 'backfill_id', 'INSERT, UPDATE'), \
                has_any_column_privilege($2, 's3_objects', 'UPDATE') \
                    AND NOT has_column_privilege($2, 's3_objects', 'logins', 'INSERT') \
                    AND NOT has_column_privilege($2, 's3_objects', 'finished_at', 'UPDATE') \
                    AND NOT has_column_privilege($2, 's3_backfills', 'db_user', 'INSERT')",
        &[&writer, &operator],
    ))
    .await
    .map(|row| (0..5).map(|i| row.get(i)).collect())
    .unwrap();
    // The writer counts, never registers; the operator registers, never counts (nor stamps).
    assert_eq!(granted, vec![true, false, true, true, true]);
}
