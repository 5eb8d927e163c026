//! End-to-end behaviour of the pipeline against a real LocalStack SQS and a real PostgreSQL.

use std::collections::HashMap;
use std::time::Duration;

use crate::helpers::*;
use login_etl::transform;

#[tokio::test(flavor = "multi_thread")]
async fn binary_drains_the_sample_into_99_rows_and_1_quarantined_and_a_second_run_changes_nothing()
{
    binary_drains_the_sample(&TestQueue::new(30).await, Redeliveries::None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redelivery_after_commit_without_delete_gives_no_duplicate() {
    redelivery_after_commit_adds_no_duplicate(&TestQueue::new(1).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_message_twice_in_one_batch_is_written_once() {
    let db = TestDb::new().await;
    let mut sink = db.sink();
    sink.migrate().await.unwrap();
    let envelope = login_etl::source::Envelope {
        message_id: "same-id".into(),
        receipt_handle: login_etl::source::ReceiptHandle("r".into()),
        body: sample_bodies()[0].clone(),
        sent_at: chrono::Utc::now(),
        receive_count: 1,
        undated_copy: false,
        chunk_of: None,
        received: std::time::Instant::now(),
    };
    let outcome = transform::process(&envelope, &masker(), chrono::Utc::now()).remove(0);
    let report = sink
        .write_batch(&[outcome.clone(), outcome.clone()])
        .await
        .unwrap();
    assert_eq!((report.rows, report.duplicates), (1, 1));
    let report = sink.write_batch(&[outcome]).await.unwrap();
    assert_eq!((report.rows, report.duplicates), (0, 1));
    assert_eq!(db.counts().await.rows, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn take_home_table_with_integer_app_version_is_migrated_keeping_values() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE user_logins(
                 user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
                 masked_device_id varchar(256), locale varchar(32), app_version integer,
                 create_date date);
             INSERT INTO user_logins VALUES ('old-user', 'ios', 'x', 'y', 'RU', 230, '2020-01-01');",
        )
        .await
        .unwrap();

    queue.send(&sample_bodies()).await;
    let summary = drain(&queue, &db).await;
    assert_eq!((summary.written, summary.quarantined), (99, 1));

    let column = client
        .query_one(
            "SELECT data_type, character_maximum_length FROM information_schema.columns
             WHERE table_name = 'user_logins' AND column_name = 'app_version'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(column.get::<_, String>(0), "character varying");
    assert_eq!(column.get::<_, Option<i32>>(1), Some(32));
    let old: String = client
        .query_one(
            "SELECT app_version FROM user_logins WHERE user_id = 'old-user'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(old, "230");
    let dotted: i64 = client
        .query_one(
            "SELECT count(*) FROM user_logins WHERE app_version LIKE '%.%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(dotted > 90, "versions such as 2.3.0 are stored as text");
    // Migrating again is a no-op.
    assert_eq!(db.sink().migrate().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_database_deletes_nothing_and_loses_nothing() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    db.sink().migrate().await.unwrap();
    let client = db.client().await;
    // Every write fails at COPY time, after the ledger insert of the same transaction.
    client
        .batch_execute(
            "CREATE FUNCTION fail_writes() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
             CREATE TRIGGER fail_writes BEFORE INSERT ON user_logins
                 FOR EACH ROW EXECUTE FUNCTION fail_writes();",
        )
        .await
        .unwrap();
    queue.send(&sample_bodies()).await;

    let out =
        run_binary(binary(&queue, &db).args(["run", "--drain", "--write-retry-seconds", "2"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "must fail while the database rejects writes"
    );
    assert!(
        stderr.contains("injected failure"),
        "the cause is reported: {stderr}"
    );
    assert_eq!(queue.remaining().await, 100, "nothing was deleted");
    let counts = db.counts().await;
    assert_eq!(
        (counts.rows, counts.quarantined(), counts.processed),
        (0, 0, 0)
    );

    // The database recovers; the messages come back after the visibility timeout and all land.
    client
        .batch_execute("DROP TRIGGER fail_writes ON user_logins")
        .await
        .unwrap();
    queue.until_none_in_flight().await;
    run_drain(&queue, &db, &[]);
    assert_landed(&db, &queue, 99, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_bad_message_is_quarantined_with_its_reason_and_no_pii() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let ok = |field: &str, value: &str| {
        let mut m = serde_json::json!({
            "user_id": "5082b1ae-6523-4e3b-a1d8-9750b4407ee8", "app_version": "3.7",
            "device_type": "android", "ip": "235.167.63.6", "locale": null, "device_id": "346-96-4168"
        });
        m[field] = serde_json::from_str(value).unwrap();
        m.to_string()
    };
    let without = |field: &str| {
        let mut m: serde_json::Value = serde_json::from_str(&ok("locale", "null")).unwrap();
        m.as_object_mut().unwrap().remove(field);
        m.to_string()
    };
    let cases: Vec<(String, &str, &str)> = vec![
        ("not json at all 235.167.63.6".into(), "invalid_json", "not valid JSON"),
        (r#"{"user_id": "u", "ip": "235.167.63.6", "device_"#.into(), "invalid_json", "EOF while parsing"),
        // An array is a body of several logins: this one holds one, itself an array.
        (r#"[["235.167.63.6", "346-96-4168"]]"#.into(), "not_an_object", "element [0] of 1: not_an_object: "),
        (r#"[]"#.into(), "not_an_object", "an empty JSON array holds no login"),
        ("null".into(), "not_an_object", "got null"),
        (r#""235.167.63.6""#.into(), "not_an_object", "got a string"),
        (r#"{"foo": "oops_wrong_msg_type", "bar": "123"}"#.into(), "invalid_fields", "`user_id` is missing"),
        (without("ip"), "invalid_fields", "`ip` is missing"),
        (ok("ip", "null"), "invalid_fields", "`ip` is null"),
        (ok("device_id", "null"), "invalid_fields", "`device_id` is null"),
        (ok("ip", r#""235.167.63.256""#), "invalid_fields", "`ip` is not an IPv4 or IPv6 address"),
        (ok("ip", "3946266374"), "invalid_fields", "`ip` must be a string, got a number"),
        (ok("device_id", "3469641680"), "invalid_fields", "`device_id` must be a string, got a number"),
        (ok("user_id", &format!("\"{}\"", "u".repeat(129))), "invalid_fields", "`user_id` is 129 characters long, the limit is 128"),
        (ok("locale", &format!("\"{}\"", "x".repeat(33))), "invalid_fields", "`locale` is 33 characters long"),
        (ok("app_version", "3.7"), "invalid_fields", "`app_version` must be a string or null, got a number"),
        (ok("device_type", r#""""#), "invalid_fields", "`device_type` is empty"),
        (ok("user_id", r#""a\u0000b""#), "invalid_fields", "`user_id` contains a NUL character"),
        (ok("device_id", &format!("\"{}\"", "9".repeat(200_000))), "invalid_fields", "`device_id` is 200000 bytes long, the limit is 128 bytes"),
        (
            r#"{"user_id":"u","device_type":"ios","ip":"235.167.63.6","ip":"1.1.1.1","device_id":"346-96-4168"}"#.into(),
            "duplicate_key",
            "key `ip` appears more than once",
        ),
    ];
    let bodies: Vec<String> = cases.iter().map(|(b, _, _)| b.clone()).collect();
    let ids = queue.send(&bodies).await;
    let summary = drain(&queue, &db).await;
    assert_eq!(summary.quarantined, cases.len() as u64, "{summary}");
    assert_eq!(summary.written, 0);

    let client = db.client().await;
    let stored: HashMap<String, (String, String, Option<String>)> = client
        .query(
            "SELECT message_id, reason_code, reason, body_masked FROM quarantined_messages",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    for ((body, code, reason), id) in cases.iter().zip(&ids) {
        let (got_code, got_reason, masked) = &stored[id.as_str()];
        let shown = &body[..body.len().min(60)];
        assert_eq!(got_code, code, "{shown}");
        assert!(got_reason.contains(reason), "{shown}: {got_reason}");
        // Every entry keeps a scrubbed body; one that is not JSON keeps only its size,
        // fingerprint and where parsing failed.
        let masked = masked
            .as_deref()
            .expect("every new entry keeps a scrubbed body");
        let not_json = masked.starts_with(r##"{"#not_json":"##);
        let is_json = serde_json::from_str::<serde_json::Value>(body).is_ok();
        assert_eq!(not_json, !is_json, "{shown} -> {masked}");
    }
    let dump = db.dump_all_tables().await;
    for raw in [
        "235.167.63.6",
        "346-96-4168",
        "3946266374",
        "3469641680",
        "1.1.1.1",
    ] {
        assert!(!dump.contains(raw), "raw value leaked into the database");
    }
    assert_eq!(queue.remaining().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_commits_the_batch_in_flight_and_exits_zero() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    queue.send(&sample_bodies()).await;
    // A long batch window: messages are received and held, nothing committed until the signal.
    let child = binary(&queue, &db)
        .args([
            "run",
            "--batch-max-wait-ms",
            "60000",
            "--wait-time-seconds",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        "all messages received and held in the open batch",
        Duration::from_secs(120),
        || async {
            let depth = queue.source.depth().await.unwrap();
            (depth.visible, depth.in_flight) == (0, 100)
        },
    )
    .await;
    assert_eq!(
        db.counts().await.rows,
        0,
        "nothing committed before the signal"
    );

    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = db.counts().await;
    assert_eq!((counts.rows, counts.quarantined()), (99, 1));
    assert_eq!(
        queue.remaining().await,
        0,
        "the batch in flight was deleted after its commit"
    );
}
