//! An erasure holds against a login's later copies (issue 32): a dead letter redriven after the
//! erasure (SQS gives it a new SentTimestamp), whether SQS moves it back with its attributes or a
//! person re-sends it with only its original id (even once the ledger has forgotten it, or with a
//! first-sending time of their own), and a login whose producer dated its envelope minutes ahead
//! of the queue. None of them lands a row or an entry of the erased subject, nor goes to the
//! dead-letter queue raw, and neither does a refused body whose users cannot be read; the same
//! copies of a subject not erased land once.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::redrive::{
    move_back, peek, send_copies, send_with_attributes, SENT_ATTRIBUTE, SOURCE_ATTRIBUTE,
};

fn login(user: &str, ip: &str, device: &str) -> String {
    json!({"user_id": user, "ip": ip, "device_id": device, "device_type": "ios"}).to_string()
}

/// Rows and quarantine entries that name `user`.
async fn traces_of(db: &TestDb, user: &str) -> (i64, i64) {
    let rows = db
        .scalar(&format!(
            "SELECT count(*) FROM user_logins WHERE user_id = '{user}'"
        ))
        .await;
    let entries = db
        .scalar(&format!(
            "SELECT count(*) FROM quarantined_messages WHERE user_id = '{user}' \
             OR '{user}' = ANY(user_ids) OR body_masked LIKE '%{user}%'"
        ))
        .await;
    (rows, entries)
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_redriven_after_the_erasure_land_nothing_of_the_subject() {
    let (db, queue, dlq, anchor) = (
        TestDb::new().await,
        TestQueue::new(30).await,
        TestQueue::new(30).await,
        TestQueue::new(30).await,
    );
    // Refused by the database until the fix ships (the constraint is dropped).
    let (subject, kept, other) = (
        unique("blocked-erased"),
        unique("blocked-kept"),
        unique("fine"),
    );
    run_ok(binary(&queue, &db).args(["migrate"]));
    let constraint = "ALTER TABLE user_logins ADD CONSTRAINT not_blocked \
                      CHECK (user_id NOT LIKE 'blocked-%')";
    db.client().await.batch_execute(constraint).await.unwrap();
    queue
        .send(&[
            // A message of the subject alone: its dead letter is the whole message.
            login(&subject, "198.51.100.11", "dev-1"),
            // The subject's login among others': its dead letter is that element alone.
            format!(
                "[{},{}]",
                login(&subject, "198.51.100.12", "dev-2"),
                login(&other, "198.51.100.13", "dev-3")
            ),
            // The same fate for a subject who is not erased: it lands after the redrive.
            format!(
                "[{},{}]",
                login(&kept, "198.51.100.14", "dev-4"),
                login(&other, "198.51.100.15", "dev-5")
            ),
        ])
        .await;
    let dlq_flag = ["--dead-letter-queue", dlq.source.queue_url()];
    run_drain(&queue, &db, &dlq_flag);
    let dead = peek(&dlq, 3).await;
    assert_eq!(dead.len(), 3, "three refused logins forwarded");

    run_ok(binary(&queue, &db).args(["erase", "--user-id", &subject, "--reason", "dsr-7"]));
    tokio::time::sleep(Duration::from_millis(50)).await;
    db.client()
        .await
        .batch_execute("ALTER TABLE user_logins DROP CONSTRAINT not_blocked")
        .await
        .unwrap();
    // Each dead letter comes back twice, both with SentTimestamps after the erasure: re-sent by
    // hand with only its original id, and moved back by SQS with all its attributes.
    send_copies(&queue, &dead).await;
    move_back(&dlq, &queue, &anchor).await;
    let out = run_drain(&queue, &db, &dlq_flag);
    let log = String::from_utf8_lossy(&out.stderr);

    assert_eq!(traces_of(&db, &subject).await, (0, 0), "{log}");
    assert_eq!(
        traces_of(&db, &kept).await.0,
        1,
        "the subject not erased lands once: {log}"
    );
    assert_eq!(traces_of(&db, &other).await.0, 2);
    assert_eq!(queue.remaining().await, 0);
    assert_eq!(dlq.remaining().await, 0, "nothing forwarded again: {log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_envelope_dated_ahead_of_the_queue_does_not_outlive_the_erasure() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let subject = unique("ahead");
    run_ok(binary(&queue, &db).args(["migrate"]));
    // The producer's clock runs four minutes ahead (within the skew the envelope time is
    // trusted for): the login says it was sent after the erasure that follows it.
    let ahead = chrono::Utc::now() + chrono::TimeDelta::minutes(4);
    let notification = json!({
        "Type": "Notification",
        "MessageId": "sns-1",
        "TopicArn": "arn:aws:sns:us-east-1:000000000000:logins",
        "Message": login(&subject, "198.51.100.21", "dev-21"),
        "Timestamp": ahead.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    queue.send(&[notification.to_string()]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    run_ok(binary(&queue, &db).args(["erase", "--user-id", &subject, "--reason", "dsr-8"]));
    let out = run_drain(&queue, &db, &[]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(traces_of(&db, &subject).await, (0, 0), "{printed}");
    assert!(
        printed.contains("erased users' logins left out 1"),
        "{printed}"
    );
    assert_eq!(queue.remaining().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erased_subjects_refused_logins_are_not_forwarded_raw() {
    let (db, queue, dlq) = (
        TestDb::new().await,
        TestQueue::new(30).await,
        TestQueue::new(30).await,
    );
    let (subject, other) = (unique("refused-erased"), unique("refused-kept"));
    let refused = |user: &str, n: u8| {
        json!({"user_id": user, "ip": format!("198.51.100.{n}"), "device_id": format!("dev-{n}")})
            .to_string()
    };
    queue
        .send(&[
            refused(&subject, 31),
            format!(
                "[{},{}]",
                refused(&subject, 32),
                login(&other, "198.51.100.33", "dev-33")
            ),
            refused(&other, 34),
        ])
        .await;
    run_ok(binary(&queue, &db).args(["migrate"]));
    run_ok(binary(&queue, &db).args(["erase", "--user-id", &subject, "--reason", "dsr-9"]));
    run_drain(
        &queue,
        &db,
        &["--dead-letter-queue", dlq.source.queue_url()],
    );
    assert_eq!(traces_of(&db, &subject).await, (0, 0));
    assert_eq!(traces_of(&db, &other).await, (1, 1));
    assert_eq!(
        dlq.remaining().await,
        1,
        "only the other user's dead letter"
    );
    let dead = peek(&dlq, 1).await;
    assert!(!dead[0].0.contains(&subject), "{}", dead[0].0);
}

/// A copy re-sent by hand says which message it is a copy of, and maybe when that was sent. After
/// an erasure none of it counts for more than the earliest the copy can be: the ledger's first
/// record of its original (a fresh first-sending time does not outweigh it) or, when the ledger
/// no longer knows the original and no time came with it, the oldest a dead letter can be.
#[tokio::test(flavor = "multi_thread")]
async fn copies_re_sent_by_hand_after_the_erasure_land_nothing_and_are_not_forwarded() {
    let (db, queue, dlq, again) = (
        TestDb::new().await,
        TestQueue::new(30).await,
        TestQueue::new(30).await,
        TestQueue::new(30).await,
    );
    let (subject, other) = (unique("copied-erased"), unique("copied-kept"));
    let refused = json!({"user_id": subject, "ip": "198.51.100.51", "device_id": "dev-51"});
    queue
        .send(&[format!(
            "[{refused},{}]",
            login(&other, "198.51.100.52", "dev-52")
        )])
        .await;
    run_drain(
        &queue,
        &db,
        &["--dead-letter-queue", dlq.source.queue_url()],
    );
    let dead = peek(&dlq, 1).await;
    assert_eq!(dead.len(), 1, "the subject's refused login forwarded alone");
    run_ok(binary(&queue, &db).args(["erase", "--user-id", &subject, "--reason", "dsr-10"]));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let now = chrono::Utc::now().timestamp_millis().to_string();
    let (body, original) = &dead[0];
    // Its original id, and a first-sending time of now: the ledger knows better.
    send_with_attributes(
        &queue,
        body,
        &[(SOURCE_ATTRIBUTE, original), (SENT_ATTRIBUTE, &now)],
    )
    .await;
    // Copies of messages the ledger no longer knows (pruned), with only an id.
    let gone = |n: u8| unique(&format!("pruned-{n}"));
    let valid = login(&subject, "198.51.100.53", "dev-53");
    send_with_attributes(&queue, &valid, &[(SOURCE_ATTRIBUTE, &gone(1))]).await;
    send_with_attributes(
        &queue,
        &refused.to_string(),
        &[(SOURCE_ATTRIBUTE, &gone(2))],
    )
    .await;
    // A login sent after the erasure, no copy of anything: new data, it lands.
    queue
        .send(&[login(&subject, "198.51.100.54", "dev-54")])
        .await;
    let out = run_drain(
        &queue,
        &db,
        &["--dead-letter-queue", again.source.queue_url()],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(traces_of(&db, &subject).await, (1, 0), "{log}");
    let ip: String = db
        .scalar(&format!(
            "SELECT masked_ip FROM user_logins WHERE user_id = '{subject}'"
        ))
        .await;
    assert!(!ip.is_empty());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("erased users' logins left out 3"),
        "{stdout}"
    );
    assert_eq!(
        again.remaining().await,
        0,
        "nothing of the subject forwarded raw: {log}"
    );
    assert_eq!(queue.remaining().await, 0);
}

/// A refused body whose users cannot be read (cut short) may still hold an erased subject's
/// values: one sent before an erasure is not forwarded raw after it (its scrubbed entry is kept);
/// one sent after the erasure is.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_refused_body_from_before_an_erasure_is_not_forwarded_raw() {
    let (db, queue, dlq) = (
        TestDb::new().await,
        TestQueue::new(30).await,
        TestQueue::new(30).await,
    );
    let subject = unique("unreadable-erased");
    let cut = |n: u8| {
        let whole = login(&subject, &format!("198.51.100.{n}"), &format!("dev-{n}"));
        whole[..whole.len() - 12].to_string()
    };
    queue.send(&[cut(61)]).await;
    run_ok(binary(&queue, &db).args(["migrate"]));
    run_ok(binary(&queue, &db).args(["erase", "--user-id", &subject, "--reason", "dsr-11"]));
    tokio::time::sleep(Duration::from_millis(50)).await;
    queue.send(&[cut(62)]).await;
    run_drain(
        &queue,
        &db,
        &["--dead-letter-queue", dlq.source.queue_url()],
    );
    let dead = peek(&dlq, 1).await;
    assert_eq!(
        dlq.remaining().await,
        1,
        "only the body sent after the erasure"
    );
    assert!(dead[0].0.contains("198.51.100.62"), "{}", dead[0].0);
    let entries: i64 = db.scalar("SELECT count(*) FROM quarantined_messages").await;
    assert_eq!(entries, 2, "both kept, scrubbed");
    assert_eq!(queue.remaining().await, 0);
}
