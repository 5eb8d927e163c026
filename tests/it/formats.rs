//! Messages as AWS delivers them: the sample sent as SNS notifications, as EventBridge events and
//! as base64 of gzip lands as the same 99 rows + 1 quarantined as a plain drain (the same masks),
//! one ledger entry per message, `sent_at` is the envelope's timestamp; a gzip bomb is one
//! quarantine entry; `--envelope none` keeps the old behaviour.

use serde_json::{json, Value};

use crate::helpers::*;

/// Wraps the `i`th sample body as a producer would.
type Wrap = fn(&str, usize) -> String;
/// A landed row: user, masks, sent_at.
type Landed = (
    String,
    String,
    String,
    Option<chrono::DateTime<chrono::Utc>>,
);

const SNS_TIME: &str = "2026-11-30T10:11:12.345Z";
const EVENT_TIME: &str = "2026-11-29T08:09:10Z";

fn sns(body: &str, i: usize) -> String {
    json!({"Type": "Notification", "MessageId": format!("sns-{i}"),
           "TopicArn": "arn:aws:sns:eu-west-1:123456789012:logins", "Message": body,
           "Timestamp": SNS_TIME, "SignatureVersion": "1"})
    .to_string()
}

fn eventbridge(body: &str, i: usize) -> String {
    // The take-home's junk message is a JSON object too: it goes in `detail` like the rest.
    let detail: Value = serde_json::from_str(body).unwrap();
    json!({"version": "0", "id": format!("ev-{i}"), "detail-type": "UserLogin", "source": "app.auth",
           "account": "123456789012", "time": EVENT_TIME, "region": "eu-west-1", "resources": [],
           "detail": detail})
    .to_string()
}

fn gzip(body: &str, _: usize) -> String {
    gzip_base64(body)
}

/// The reason of the one quarantine entry.
async fn quarantine_reason(db: &TestDb) -> String {
    db.scalar("SELECT reason FROM quarantined_messages").await
}

/// (user_id, masked_ip, masked_device_id, sent_at) of every row, sorted.
async fn rows(db: &TestDb) -> Vec<Landed> {
    db.client()
        .await
        .query(
            "SELECT user_id, masked_ip, masked_device_id, sent_at FROM user_logins ORDER BY 1, 2, 3",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_lands_the_same_in_every_shape_aws_delivers() {
    let bodies = sample_bodies();
    let (plain_db, plain_queue) = (TestDb::new().await, TestQueue::new(30).await);
    plain_queue.send(&bodies).await;
    let sent = chrono::Utc::now();
    run_drain(&plain_queue, &plain_db, &[]);
    let plain = rows(&plain_db).await;
    assert_eq!(plain.len(), 99);
    for (_, _, _, sent_at) in &plain {
        let delta = (sent_at.unwrap() - sent).num_milliseconds().abs();
        assert!(
            delta < 5_000,
            "plain sent_at is the SQS send time ({delta} ms)"
        );
    }
    let shapes: [(&str, Wrap, Option<&str>); 3] = [
        ("sns", sns, Some(SNS_TIME)),
        ("eventbridge", eventbridge, Some(EVENT_TIME)),
        ("gzip", gzip, None),
    ];
    for (name, wrap, time) in shapes {
        let wrapped: Vec<String> = bodies.iter().enumerate().map(|(i, b)| wrap(b, i)).collect();
        let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
        queue.send(&wrapped).await;
        run_drain(&queue, &db, &[]);
        let counts = db.counts().await;
        assert_eq!((counts.rows, counts.quarantined()), (99, 1), "{name}");
        let landed = rows(&db).await;
        let masks = |r: &[Landed]| {
            r.iter()
                .map(|(u, i, d, _)| (u.clone(), i.clone(), d.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            masks(&landed),
            masks(&plain),
            "{name}: the same rows and masks"
        );
        if let Some(time) = time {
            let expected = chrono::DateTime::parse_from_rfc3339(time).unwrap();
            assert!(
                landed.iter().all(|r| r.3 == Some(expected.into())),
                "{name}: sent_at"
            );
        }
        let reason = quarantine_reason(&db).await;
        if name != "gzip" {
            assert!(
                reason.starts_with(&format!("{name} envelope: invalid_fields:")),
                "{reason}"
            );
        }
        // One ledger entry per SQS message: a redelivered envelope is skipped like any message.
        assert_eq!(counts.processed, 100, "{name}");
        run_drain(&queue, &db, &[]);
        assert_eq!(
            db.counts().await.rows,
            99,
            "{name}: a second drain adds nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gzip_bomb_is_one_quarantine_entry_and_envelope_none_keeps_the_old_behaviour() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let bomb = gzip(&" ".repeat(64 << 20), 0);
    assert!(
        bomb.len() < 200 << 10,
        "the bomb fits in a message ({} bytes)",
        bomb.len()
    );
    queue.send(&[bomb]).await;
    run_drain(&queue, &db, &[]);
    let reason = quarantine_reason(&db).await;
    assert!(
        reason.contains("--max-decompressed-bytes (1048576)"),
        "{reason}"
    );

    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let wrapped: Vec<String> = sample_bodies()
        .iter()
        .enumerate()
        .map(|(i, b)| sns(b, i))
        .collect();
    queue.send(&wrapped).await;
    run_drain(&queue, &db, &["--envelope", "none"]);
    let counts = db.counts().await;
    assert_eq!(
        (counts.rows, counts.quarantined()),
        (0, 100),
        "every notification refused as before"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_fields_are_counted_by_name_and_never_by_value() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    db.sink().migrate().await.unwrap();
    let body = r#"{"user_id":"u","device_type":"ios","ip":"198.51.100.4","device_id":"zyxwvu","campaign":"spring","zyxwvu":1,"198.51.100.4":true}"#;
    queue.send(&[body.to_string()]).await;
    let mut run = Spawned::new(
        binary(&queue, &db)
            .env("LOGIN_ETL_METRICS_ADDR", ANY_PORT)
            .args(["run", "--keep-extra-fields"]),
    );
    let port = run.metrics_port().await;
    wait_until(
        "the login landed",
        std::time::Duration::from_secs(30),
        || async { db.counts().await.rows == 1 },
    )
    .await;
    let (_, metrics) = http_get(port, "/metrics").await.expect("metrics served");
    run.sigterm();
    run.wait(std::time::Duration::from_secs(30)).await;
    assert!(
        metrics.contains(r#"login_etl_unknown_fields_total{field="campaign"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"login_etl_unknown_fields_total{field="other"} 2"#),
        "{metrics}"
    );
    assert!(!metrics.contains("zyxwvu") && !metrics.contains("198.51.100.4"));
    assert!(metrics.contains(r#"login_etl_messages_by_envelope_total{envelope="none"} 1"#));
    assert!(
        metrics.contains("login_etl_logins_per_message_count 1"),
        "{metrics}"
    );

    // `status` lists the names, never a name that could be a value.
    let status = run_ok(binary(&queue, &db).arg("status"));
    let status = String::from_utf8_lossy(&status.stdout);
    let line = status
        .lines()
        .find(|l| l.starts_with("unknown fields sent by producers: "))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(line.contains("campaign (since "), "{line}");
    assert!(
        !status.contains("zyxwvu") && !status.contains("198.51.100"),
        "{status}"
    );

    // --keep-extra-fields: the fields beside the row, scrubbed; no raw value anywhere.
    let extra: Value = db.scalar("SELECT extra_fields FROM user_logins").await;
    let object = extra.as_object().expect("an object");
    assert_eq!(object.len(), 3, "{extra}");
    assert!(
        object["campaign"].as_str().unwrap().starts_with("#str(6) "),
        "{extra}"
    );
    assert!(!extra.to_string().contains("spring"));
    let raw = ["zyxwvu".to_string(), "198.51.100.4".to_string()];
    assert_no_raw_pii(&db.dump_all_tables().await, &raw, "the database");
}

/// Producers sending ever new field names: the table of names fills to its bound and no further,
/// from one sink or several, and every login still lands.
#[tokio::test(flavor = "multi_thread")]
async fn ever_new_field_names_fill_the_name_table_to_its_bound_and_every_login_lands() {
    let db = TestDb::new().await;
    db.sink().migrate().await.unwrap();
    let masker = masker();
    let mut written = 0;
    for sink_no in 0..2 {
        let mut sink = db.sink();
        for batch in 0..4 {
            let outcomes: Vec<_> = (0..10)
                .flat_map(|m| {
                    // Letters only: a name with a digit could be a value and is never recorded.
                    let letters = |n: usize| -> String {
                        n.to_string().bytes().map(|d| (d - b'0' + b'a') as char).collect()
                    };
                    let names: String = (0..10)
                        .map(|f| letters(sink_no * 1000 + batch * 100 + m * 10 + f))
                        .map(|name| format!(r#","f_{name}":1"#))
                        .collect();
                    let body = format!(
                        r#"{{"user_id":"u{m}","device_type":"ios","ip":"10.0.0.{m}","device_id":"d-{m}"{names}}}"#
                    );
                    let id = format!("m-{sink_no}-{batch}-{m}");
                    login_etl::transform::process(&envelope(&id, &body, 0), &masker, chrono::Utc::now())
                })
                .collect();
            written += sink.write_batch(&outcomes).await.unwrap().rows;
        }
    }
    assert_eq!(written, 80, "every login landed");
    let names: i64 = db.scalar("SELECT count(*) FROM unknown_fields").await;
    assert_eq!(
        names, 64,
        "800 distinct names sent, the table holds its bound"
    );
}
