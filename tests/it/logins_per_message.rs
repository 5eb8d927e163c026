//! Several logins in one message: the sample as 10 JSON arrays of 10 and as NDJSON (plain and
//! gzip+base64) lands as the same 99 rows + 1 quarantined as a plain drain, with one ledger entry
//! per message; mixed arrays (valid, invalid and database-refused logins) land each login once;
//! a consumer SIGKILLed between the commit and the delete of a 1,000-login message adds nothing
//! on redelivery; an over-cap array is one quarantine entry.

use std::time::Duration;

use crate::helpers::*;

/// Ten sample bodies made into one message.
type Shape = dyn Fn(&[String]) -> String;

/// (user_id, masked_ip, masked_device_id) of every row, sorted.
async fn masks(db: &TestDb) -> Vec<(String, String, String)> {
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT user_id, masked_ip, masked_device_id FROM user_logins ORDER BY 1, 2, 3",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// (element, reason_code) of every quarantine entry, sorted.
async fn entries(db: &TestDb) -> Vec<(i32, String)> {
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT element, reason_code FROM quarantined_messages ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

fn login(user: &str, device_type: &str, i: usize) -> String {
    format!(
        r#"{{"user_id":"{user}","device_type":"{device_type}","ip":"10.{}.{}.{}","device_id":"{:03}-{:02}-{:04}","locale":"RU","app_version":"2.3.0"}}"#,
        i / 65536 % 256,
        i / 256 % 256,
        i % 256,
        i % 1000,
        i % 100,
        i
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_as_arrays_and_ndjson_lands_like_a_plain_drain() {
    let bodies = sample_bodies();
    let (plain_db, plain_queue) = (TestDb::new().await, TestQueue::new(30).await);
    plain_queue.send(&bodies).await;
    run_drain(&plain_queue, &plain_db, &[]);
    let plain = masks(&plain_db).await;
    assert_eq!(plain.len(), 99);

    let array = |chunk: &[String]| format!("[{}]", chunk.join(",\n  "));
    let ndjson = |chunk: &[String]| chunk.join("\n") + "\n";
    let gzip_ndjson = |chunk: &[String]| gzip_base64(&chunk.join("\n"));
    // Each line a gzip member of its own (an appending compressor), base64 wrapped at 76.
    let gzip_members = |chunk: &[String]| {
        let lines: Vec<String> = chunk.iter().map(|l| format!("{l}\n")).collect();
        gzip_members_base64_wrapped(&lines.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let shapes: [(&str, &Shape); 4] = [
        ("array", &array),
        ("ndjson", &ndjson),
        ("gzip ndjson", &gzip_ndjson),
        ("gzip members, wrapped base64", &gzip_members),
    ];
    for (name, shape) in shapes {
        let messages: Vec<String> = bodies.chunks(10).map(shape).collect();
        let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
        queue.send(&messages).await;
        let sent = chrono::Utc::now();
        run_drain(&queue, &db, &[]);
        let counts = db.counts().await;
        assert_eq!((counts.rows, counts.quarantined()), (99, 1), "{name}");
        assert_eq!(counts.processed, 10, "{name}: one ledger entry per message");
        assert_eq!(masks(&db).await, plain, "{name}: the same rows and masks");
        let (element, _) = &entries(&db).await[0];
        assert!((0..10).contains(element), "{name}: the entry has its index");
        let spread: f64 = db
            .client()
            .await
            .query_one(
                "SELECT max(abs(extract(epoch FROM sent_at - $1::timestamptz)))::float8 FROM user_logins",
                &[&sent],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            spread < 5.0,
            "{name}: sent_at is the send time ({spread} s)"
        );
        // Drained again (nothing left): nothing added.
        run_drain(&queue, &db, &[]);
        assert_eq!(db.counts().await.rows, 99, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_arrays_land_each_login_exactly_once() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    refuse_web_logins(&db).await;
    // Eight messages of 25 logins: every 7th refused by the database, every 11th invalid.
    let mut expected_rows = 0;
    let mut expected = Vec::new();
    let messages: Vec<String> = (0..8)
        .map(|m| {
            let elements: Vec<String> = (0..25)
                .map(|e| {
                    let i = m * 25 + e;
                    if i % 11 == 0 {
                        expected.push((e as i32, "invalid_fields".to_string()));
                        format!(r#"{{"user_id":"u{i}","device_type":"ios"}}"#)
                    } else if i % 7 == 0 {
                        expected.push((e as i32, "rejected_by_database".to_string()));
                        login(&format!("u{i}"), "web", i)
                    } else {
                        expected_rows += 1;
                        login(&format!("u{i}"), "ios", i)
                    }
                })
                .collect();
            format!("[{}]", elements.join(","))
        })
        .chain([login("solo", "web", 9999)])
        .collect();
    expected.push((-1, "rejected_by_database".into()));
    expected.sort();
    queue.send(&messages).await;
    let output = run_drain(&queue, &db, &["--batch-max-wait-ms", "1000"]);
    let counts = db.counts().await;
    assert_eq!(counts.rows, expected_rows);
    assert_eq!(counts.processed, 9);
    assert_eq!(entries(&db).await, expected);
    let distinct_users: i64 = db
        .scalar("SELECT count(DISTINCT user_id) FROM user_logins")
        .await;
    assert_eq!(distinct_users, expected_rows, "each login once");
    let reason: String = db
        .scalar("SELECT reason FROM quarantined_messages WHERE reason_code = 'rejected_by_database' AND element >= 0 LIMIT 1")
        .await;
    assert!(
        reason.contains("of 25: rejected_by_database: PostgreSQL rejected the row"),
        "{reason}"
    );
    assert_eq!(queue.remaining().await, 0, "{output:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_commit_and_delete_of_a_1000_login_message_adds_nothing() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    db.sink().migrate().await.unwrap();
    let elements: Vec<String> = (0..1000)
        .map(|i| {
            if i % 100 == 0 {
                format!(r#"{{"user_id":"bad{i}"}}"#)
            } else {
                login(&format!("k{i}"), "android", i)
            }
        })
        .collect();
    let body = format!("[{}]", elements.join(","));
    assert!(body.len() < 256 << 10);
    queue.send(&[body]).await;
    let mut run = Spawned::new(
        binary(&queue, &db)
            .env("LOGIN_ETL_TEST_STALL_AFTER_COMMIT", "1")
            .args(["run", "--drain"]),
    );
    wait_until("the commit", Duration::from_secs(60), || async {
        db.counts().await.rows == 990
    })
    .await;
    run.kill9();
    assert_eq!(queue.remaining().await, 1, "killed before the delete");
    assert_eq!(db.counts().await.quarantined(), 10);

    // The message comes back after its visibility timeout: it is a duplicate, nothing lands.
    queue.until_none_in_flight().await;
    run_drain(&queue, &db, &[]);
    let counts = db.counts().await;
    assert_eq!(
        (counts.rows, counts.quarantined(), counts.processed),
        (990, 10, 1)
    );
    assert_eq!(queue.remaining().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_array_over_the_cap_is_one_quarantine_entry_with_its_count() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let elements: Vec<String> = (0..1001).map(|i| login("u", "ios", i)).collect();
    queue.send(&[format!("[{}]", elements.join(","))]).await;
    run_drain(&queue, &db, &[]);
    assert_eq!(entries(&db).await, [(-1, "too_many_logins".to_string())]);
    let reason: String = db.scalar("SELECT reason FROM quarantined_messages").await;
    assert!(
        reason.contains("a JSON array of 1001 logins, more than --max-logins-per-message (1000)"),
        "{reason}"
    );
    assert_eq!(db.counts().await.rows, 0);
}

/// Rows PostgreSQL refuses only together (a unique index over `user_id` a DBA added): generated
/// messages of repeated users land each user once, and every quarantined login is one that
/// conflicts with a landed row — never an innocent one.
#[tokio::test(flavor = "multi_thread")]
async fn logins_refused_only_together_quarantine_only_the_conflicting_ones() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    db.sink().migrate().await.unwrap();
    db.client()
        .await
        .batch_execute("CREATE UNIQUE INDEX one_login_per_user ON user_logins (user_id)")
        .await
        .unwrap();
    let mut sent = 0;
    let messages: Vec<String> = (0..12)
        .map(|m| {
            let n = rng.gen_range(1..12);
            let elements: Vec<String> = (0..n)
                .map(|e| login(&format!("u{}", rng.gen_range(0..15)), "ios", m * 100 + e))
                .collect();
            sent += n as i64;
            match elements.as_slice() {
                [one] => one.clone(),
                many => format!("[{}]", many.join(",")),
            }
        })
        .collect();
    queue.send(&messages).await;
    let output = run_drain(&queue, &db, &[]);
    let counts = db.counts().await;
    assert_eq!(
        counts.rows + counts.quarantined(),
        sent,
        "seed {seed}: every login once"
    );
    let innocent: i64 = db
        .scalar(
            "SELECT count(*) FROM quarantined_messages q WHERE NOT EXISTS \
             (SELECT 1 FROM user_logins l WHERE l.user_id = q.user_id)",
        )
        .await;
    assert_eq!(
        innocent, 0,
        "seed {seed}: a quarantined login conflicts with no landed row"
    );
    let other_reasons: i64 = db
        .scalar(
            "SELECT count(*) FROM quarantined_messages WHERE reason_code <> 'rejected_by_database'",
        )
        .await;
    assert_eq!(other_reasons, 0, "seed {seed}");
    assert_eq!(queue.remaining().await, 0, "{output:?}");
}
