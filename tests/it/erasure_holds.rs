//! An erasure that later writes cannot undo (issue 32): messages queued before it and drained
//! after it land nothing of the subject; a write in flight when `erase` starts, and a write
//! that starts while `erase` runs, leave no row of the subject; after `rekey`, no table holds a
//! mask that opens to the subject's values under any key of the ring.

use std::time::Duration;

use login_etl::mask::{ErasureFingerprints, Field, KeyRing, Masker, StrategyName};
use login_etl::transform;
use serde_json::json;

use crate::helpers::*;

const K1: &str = "k1:5151515151515151515151515151515151515151515151515151515151515151";
const K2: &str = "k2:5252525252525252525252525252525252525252525252525252525252525252";

fn login(user: &str, ip: &str, device: &str) -> String {
    json!({"user_id": user, "ip": ip, "device_id": device, "device_type": "ios"}).to_string()
}

/// Rows of `user` in `user_logins`.
async fn rows_of(db: &TestDb, user: &str) -> i64 {
    let client = db.client().await;
    (client.query_one(
        "SELECT count(*) FROM user_logins WHERE user_id = $1",
        &[&user],
    ))
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_queued_before_an_erasure_land_nothing_and_later_ones_land() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let (subject, other) = (unique("erased"), unique("kept"));
    let mut bad: serde_json::Value =
        serde_json::from_str(&login(&subject, "198.51.100.7", "dev-q")).unwrap();
    bad.as_object_mut().unwrap().remove("device_type");
    let before = [
        login(&subject, "198.51.100.1", "dev-a"),
        // A message of two users: the other's login lands, the subject's does not.
        format!(
            "[{},{}]",
            login(&subject, "198.51.100.2", "dev-b"),
            login(&other, "198.51.100.3", "dev-c")
        ),
        // A bad login of the subject alone: no quarantine entry either.
        bad.to_string(),
        login(&other, "198.51.100.4", "dev-d"),
    ];
    queue.send(&before).await;
    // The subject asks to be erased while their logins are still queued.
    run_ok(binary(&queue, &db).args(["migrate"]));
    run_ok(binary(&queue, &db).args(["erase", "--user-id", &subject, "--reason", "dsr-1"]));
    // Sent after the erasure: new data, which lands.
    tokio::time::sleep(Duration::from_millis(20)).await;
    queue
        .send(&[login(&subject, "198.51.100.5", "dev-e")])
        .await;

    let out = run_drain(&queue, &db, &[]);
    let printed =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(queue.remaining().await, 0, "every message deleted");
    assert_eq!(rows_of(&db, &subject).await, 1, "only the later login");
    assert_eq!(rows_of(&db, &other).await, 2);
    let named: i64 = db
        .scalar(&format!(
            "SELECT count(*) FROM quarantined_messages WHERE user_id = '{subject}' \
             OR '{subject}' = ANY(user_ids) OR body_masked LIKE '%{subject}%'"
        ))
        .await;
    assert_eq!(named, 0, "no quarantine entry of the subject");
    assert!(
        printed.contains("erased users' logins left out 3"),
        "the summary counts them: {printed}"
    );
    // Their messages are ledgered: a redelivery is a duplicate, never a retry.
    let ledgered: i64 = db.scalar("SELECT count(*) FROM processed_messages").await;
    assert_eq!(ledgered, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_in_flight_when_erase_starts_leaves_no_row() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    run_ok(binary(&queue, &db).args(["migrate"]));
    let subject = unique("inflight");
    // A writer's transaction, between its COPY and its commit.
    let writer = db.client().await;
    writer
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE user_logins IN ROW EXCLUSIVE MODE; \
             INSERT INTO user_logins (user_id, device_type, masked_ip, masked_device_id, create_date) \
             VALUES ('{subject}', 'ios', 'k1:x', 'k1:y', current_date)"
        ))
        .await
        .unwrap();
    let mut erase = Spawned::new(binary(&queue, &db).args([
        "erase",
        "--user-id",
        &subject,
        "--reason",
        "dsr-2",
    ]));
    wait_until(
        "erase waits for the write",
        Duration::from_secs(60),
        || async { lock_waiters(&db).await > 0 },
    )
    .await;
    writer.batch_execute("COMMIT").await.unwrap();
    assert!(
        erase.wait(Duration::from_secs(60)).await.success(),
        "{}",
        erase.log()
    );
    assert_eq!(
        rows_of(&db, &subject).await,
        0,
        "the committed row was erased"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_starts_during_an_erase_sees_its_record() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    run_ok(binary(&queue, &db).args(["migrate"]));
    let ring = KeyRing::parse(TEST_KEY_HEX).unwrap();
    let subject = unique("during");
    let records = ErasureFingerprints::new(&ring).of(&subject);
    // An erase's transaction, its record written, not yet committed.
    let eraser = db.client().await;
    eraser
        .batch_execute("BEGIN; LOCK TABLE user_logins IN SHARE ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    eraser
        .execute(
            "INSERT INTO erased_subjects (fingerprint) SELECT unnest($1::text[])",
            &[&records],
        )
        .await
        .unwrap();
    let body = login(&subject, "198.51.100.9", "dev-f");
    let outcomes = transform::process(
        &envelope("m-during", &body, 1),
        &masker(),
        chrono::Utc::now(),
    );
    let mut sink = db.sink();
    sink.honour_erasures(&ring);
    let write = tokio::spawn(async move { sink.write_batch(&outcomes).await });
    wait_until(
        "the write waits for the erase",
        Duration::from_secs(60),
        || async { lock_waiters(&db).await > 0 },
    )
    .await;
    eraser.batch_execute("COMMIT").await.unwrap();
    let report = write.await.unwrap().unwrap();
    assert_eq!((report.rows, report.erased), (0, 1));
    assert_eq!(rows_of(&db, &subject).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_erases_at_once_both_finish() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    run_ok(binary(&queue, &db).args(["migrate"]));
    let subjects = [unique("first"), unique("second")];
    // A writer's transaction holds both erases back until they wait together: with a lock that
    // does not conflict with itself, both would then get it and deadlock on their DELETEs.
    let writer = db.client().await;
    let mut sql = "BEGIN; LOCK TABLE user_logins IN ROW EXCLUSIVE MODE;".to_owned();
    for (i, subject) in subjects.iter().enumerate() {
        sql += &format!(
            " INSERT INTO user_logins (user_id, device_type, masked_ip, masked_device_id, create_date) \
             VALUES ('{subject}', 'ios', 'k1:x{i}', 'k1:y{i}', current_date);"
        );
    }
    writer.batch_execute(&sql).await.unwrap();
    let mut erases: Vec<Spawned> = subjects
        .iter()
        .map(|subject| {
            Spawned::new(binary(&queue, &db).args([
                "erase",
                "--user-id",
                subject,
                "--reason",
                "dsr-both",
            ]))
        })
        .collect();
    wait_until(
        "both erases wait for the write",
        Duration::from_secs(60),
        || async { lock_waiters(&db).await >= 2 },
    )
    .await;
    writer.batch_execute("COMMIT").await.unwrap();
    for erase in &mut erases {
        assert!(
            erase.wait(Duration::from_secs(60)).await.success(),
            "{}",
            erase.log()
        );
    }
    for subject in &subjects {
        assert_eq!(rows_of(&db, subject).await, 0, "{subject} was erased");
    }
}

/// Every mask of `value` in `field` under each key of the ring, for the strategy that made it.
fn masks_under_every_key(value: &str, field: Field) -> Vec<String> {
    [K1, K2]
        .iter()
        .map(|key| {
            let masker = Masker::new(StrategyName::AesSiv, Some(&KeyRing::parse(key).unwrap()));
            masker.unwrap().mask(field, value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn after_rekey_no_table_holds_a_mask_that_opens_to_the_erased_subject() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let (subject, other) = (unique("rekeyed"), unique("sharer"));
    let mut bad: serde_json::Value =
        serde_json::from_str(&login(&subject, "198.51.100.30", "dev-quarantined")).unwrap();
    bad.as_object_mut().unwrap().remove("device_type");
    // A second address in a field nobody asked for: kept (masked) in `extra_fields`.
    let mut own: serde_json::Value =
        serde_json::from_str(&login(&subject, "198.51.100.20", "dev-own")).unwrap();
    own["backup_ip"] = json!("198.51.100.40");
    queue
        .send(&[
            own.to_string(),
            // The device is shared with another user: it is their data too.
            login(&subject, "198.51.100.21", "dev-shared"),
            login(&other, "198.51.100.22", "dev-shared"),
            bad.to_string(),
        ])
        .await;
    let with = |ring: &str| {
        let mut cmd = binary(&queue, &db);
        cmd.env("LOGIN_ETL_MASK_KEY", ring)
            .env("LOGIN_ETL_MASK_STRATEGY", "aes-siv");
        cmd
    };
    run_ok(with(K1).args(["run", "--drain", "--keep-extra-fields"]));
    // Revealed under k1: the audit keeps k1 masks of the subject's values.
    run_ok(with(K1).args(["reveal", "--user-id", &subject, "--reason", "t-1"]));
    for value in ["198.51.100.30", "198.51.100.40"] {
        let mask = masks_under_every_key(value, Field::Ip)[0].clone();
        let reveal = [
            "reveal", "--value", &mask, "--field", "ip", "--reason", "t-2",
        ];
        run_ok(with(K1).args(reveal));
    }
    // Moved to k2: the rows change key, the audit does not.
    let ring = format!("{K2},{K1}");
    run_ok(with(&ring).args(["rekey", "--to", "k2", "--reason", "rotation"]));
    let shared_k1 = masks_under_every_key("dev-shared", Field::DeviceId)[0].clone();
    assert!(db.dump_all_tables().await.contains(&shared_k1));

    run_ok(with(&ring).args(["erase", "--user-id", &subject, "--reason", "dsr-3"]));
    let dump = db.dump_all_tables().await;
    for (value, field) in [
        ("198.51.100.20", Field::Ip),
        ("198.51.100.21", Field::Ip),
        ("198.51.100.30", Field::Ip),
        ("198.51.100.40", Field::Ip),
        ("dev-own", Field::DeviceId),
        ("dev-quarantined", Field::DeviceId),
    ] {
        for mask in masks_under_every_key(value, field) {
            assert!(!dump.contains(&mask), "{value} is still held as {mask}");
        }
    }
    // The shared value stays: the other user's row under k2, the evidence about them under k1.
    let shared = masks_under_every_key("dev-shared", Field::DeviceId);
    assert!(dump.contains(&shared[1]), "the other user's row is kept");
    assert!(
        dump.contains(&shared[0]),
        "the audit keeps the shared value"
    );
    assert!(!dump.contains(&subject), "the subject's id is nowhere");
}
