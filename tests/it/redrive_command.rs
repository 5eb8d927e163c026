//! `login-etl redrive` (issue 34, item 3): dead letters moved back to the queue `run` reads, counted
//! by reason with `--dry-run` (nothing moves), audited before anything moves. Both kinds come back
//! as the messages they were: those `run` forwarded (refused by a constraint dropped before the
//! redrive) land once, a copy re-sent by hand as well adds nothing, and one SQS moved there by
//! itself (no login-etl attribute) lands once under its own id.

use std::collections::BTreeMap;

use serde_json::json;

use crate::helpers::*;
use crate::redrive::{peek, send_copies};

fn login(user: &str, n: u8) -> String {
    json!({"user_id": user, "ip": format!("198.51.100.{n}"), "device_id": format!("dev-{n}"),
           "device_type": "ios"})
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn redrive_moves_dead_letters_back_once_keeping_who_they_were() {
    let (db, queue, dlq) = (
        TestDb::new().await,
        TestQueue::new(30).await,
        TestQueue::new(30).await,
    );
    let (blocked, other) = (unique("blocked-redrive"), unique("fine"));
    run_ok(binary(&queue, &db).args(["migrate"]));
    let constraint = "ALTER TABLE user_logins ADD CONSTRAINT not_blocked \
                      CHECK (user_id NOT LIKE 'blocked-%')";
    db.client().await.batch_execute(constraint).await.unwrap();
    queue
        .send(&[
            login(&blocked, 41),
            format!("[{},{}]", login(&blocked, 42), login(&other, 43)),
        ])
        .await;
    let dlq_url = dlq.source.queue_url().to_string();
    run_drain(&queue, &db, &["--dead-letter-queue", &dlq_url]);
    // A dead letter SQS moved there itself: no login-etl attribute.
    let native = unique("native");
    dlq.send(&[login(&native, 44)]).await;
    let redrive = |extra: &[&str]| {
        let mut cmd = binary(&queue, &db);
        cmd.args(["redrive", "--dead-letter-queue", &dlq_url])
            .args(extra);
        cmd
    };

    let dry = run_ok(&mut redrive(&["--dry-run"]));
    let printed = String::from_utf8_lossy(&dry.stdout);
    assert!(printed.contains("2  rejected_by_database"), "{printed}");
    assert!(
        printed.contains("1  moved by SQS (maxReceiveCount)"),
        "{printed}"
    );
    assert!(printed.contains("would move 3"), "{printed}");
    assert_eq!(dlq.remaining().await, 3, "a dry run moves nothing");
    assert_eq!(queue.remaining().await, 0);

    dlq.until_none_in_flight().await;
    // A copy of each forwarded dead letter is also re-sent by hand (a redrive done twice).
    let forwarded = peek(&dlq, 2).await;
    dlq.until_none_in_flight().await;
    (db.client().await)
        .batch_execute("ALTER TABLE user_logins DROP CONSTRAINT not_blocked")
        .await
        .unwrap();
    let out = run_ok(&mut redrive(&["--reason", "fixed the constraint"]));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("moved 3 dead letters"), "{printed}");
    assert_eq!(dlq.remaining().await, 0);
    let sent_at = moved_sent_times(&queue).await;
    assert_eq!(sent_at.len(), 3);
    assert!(
        sent_at.values().all(Option::is_some),
        "each copy says when it was first sent: {sent_at:?}"
    );
    send_copies(&queue, &forwarded).await;
    run_drain(&queue, &db, &["--dead-letter-queue", &dlq_url]);

    let users: Vec<String> = (db.client().await)
        .query("SELECT user_id FROM user_logins ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected = vec![
        blocked.clone(),
        blocked.clone(),
        native.clone(),
        other.clone(),
    ];
    expected.sort();
    assert_eq!(users, expected, "each login once");
    assert_eq!(dlq.remaining().await, 0, "nothing forwarded again");
    let audit: (String, String, i64) = {
        let r = (db.client().await)
            .query_one(
                "SELECT operation, reason, rows FROM privacy_operations",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(audit, ("redrive".into(), "fixed the constraint".into(), 3));
    // Nothing left: a second redrive moves nothing and audits nothing.
    let again = run_ok(&mut redrive(&[]));
    assert!(String::from_utf8_lossy(&again.stdout).contains("no dead letters"));
}

/// The `login-etl-source-sent-at` of each message of `queue` (by message id), left in it.
async fn moved_sent_times(queue: &TestQueue) -> BTreeMap<String, Option<String>> {
    let client = login_etl::source::sqs::client(&queue.settings()).await;
    let mut seen = BTreeMap::new();
    for _ in 0..20 {
        let out = client
            .receive_message()
            .queue_url(queue.source.queue_url())
            .message_attribute_names("login-etl-source-sent-at")
            .max_number_of_messages(10)
            .visibility_timeout(2)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            let sent = (m.message_attributes.unwrap_or_default())
                .get("login-etl-source-sent-at")
                .and_then(|a| a.string_value.clone());
            seen.insert(m.message_id.unwrap_or_default(), sent);
        }
        if seen.len() >= 3 {
            break;
        }
    }
    queue.until_none_in_flight().await;
    seen
}

/// A queue, a dead-letter queue and a migrated database.
async fn redrive_setup() -> (TestDb, TestQueue, TestQueue) {
    let (db, queue, dlq) = (
        TestDb::new().await,
        TestQueue::new(30).await,
        TestQueue::new(30).await,
    );
    run_ok(binary(&queue, &db).args(["migrate"]));
    (db, queue, dlq)
}

/// `redrive` of `dlq_url` (as given) with `extra` flags.
fn redrive(queue: &TestQueue, db: &TestDb, dlq_url: &str, extra: &[&str]) -> std::process::Command {
    let mut cmd = binary(queue, db);
    cmd.args(["redrive", "--dead-letter-queue", dlq_url])
        .args(extra);
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn the_queue_itself_is_refused_as_the_dead_letter_queue_whatever_its_url_looks_like() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let url = queue.source.queue_url().to_string();
    // The same queue by another host name: the same ARN.
    let other = url.replacen("127.0.0.1", "localhost", 1);
    assert_ne!(other, url, "{url}");
    for dlq_url in [other.clone(), format!("{other}/")] {
        let out = run_binary(&mut redrive(&queue, &db, &dlq_url, &["--dry-run"]));
        let printed = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{dlq_url}");
        assert!(printed.contains("is the queue itself"), "{printed}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn large_dead_letters_move_in_calls_within_the_256_kib_batch_limit() {
    let (db, queue, dlq) = redrive_setup().await;
    for n in 0..10 {
        dlq.send(&[format!("{n}{}", "x".repeat(200 * 1024))]).await;
    }
    let dlq_url = dlq.source.queue_url().to_string();
    let out = run_ok(&mut redrive(&queue, &db, &dlq_url, &[]));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("moved 10 dead letters"), "{printed}");
    assert_eq!(dlq.remaining().await, 0);
    assert_eq!(queue.remaining().await, 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_copied_but_not_deleted_is_retried_once_then_reported() {
    let (db, queue, dlq) = redrive_setup().await;
    let users: Vec<String> = (0..3).map(|_| unique("undeleted")).collect();
    let bodies: Vec<String> = (users.iter().enumerate())
        .map(|(n, u)| login(u, 50 + n as u8))
        .collect();
    dlq.send(&bodies).await;
    let dlq_url = dlq.source.queue_url().to_string();
    let spoiled = |how: &str| {
        let mut cmd = redrive(&queue, &db, &dlq_url, &[]);
        cmd.env("LOGIN_ETL_TEST_SPOIL_REDRIVE_DELETES", how);
        run_binary(&mut cmd)
    };

    // Every delete refused: the copies went, the dead letters stay, and the run says so.
    let out = spoiled("always");
    let (printed, errors) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{printed}");
    assert!(printed.contains("3 copied, not deleted"), "{printed}");
    let last = errors.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.contains("3 dead letters were copied but not deleted"),
        "{errors}"
    );
    assert!(last.contains("duplicates"), "{last}");
    assert!(
        !errors.contains("spoiled-by-a-test-hook"),
        "no receipt handle: {errors}"
    );
    for user in &users {
        assert!(!errors.contains(user.as_str()), "no body: {errors}");
    }
    assert_eq!(dlq.remaining().await, 3, "still in the dead-letter queue");
    assert_eq!(queue.remaining().await, 3);
    let not_deleted: Vec<i64> = (db.client().await)
        .query(
            "SELECT (detail->>'copied_not_deleted')::bigint FROM privacy_operations \
             WHERE operation = 'redrive' AND detail ? 'copied_not_deleted'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(not_deleted, vec![3], "the audit counts them");
    // The copies land; the dead letters that come back later are the same logins.
    run_drain(&queue, &db, &[]);
    assert_eq!(queue.remaining().await, 0);

    // Refused once only: the retry deletes them.
    let (db, queue, dlq) = redrive_setup().await;
    dlq.send(&bodies).await;
    let dlq_url = dlq.source.queue_url().to_string();
    let mut cmd = redrive(&queue, &db, &dlq_url, &[]);
    let out = run_ok(cmd.env("LOGIN_ETL_TEST_SPOIL_REDRIVE_DELETES", "once"));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("moved 3 dead letters"), "{printed}");
    assert_eq!(dlq.remaining().await, 0, "deleted on the retry");
}

/// SQS hides the rest of a FIFO message group while its first messages are in hand: the census
/// sees ten of one group; the output must still say how many wait.
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_of_a_fifo_dead_letter_queue_does_not_undercount() {
    let (db, queue, dlq) = (
        TestDb::new().await,
        TestQueue::new(30).await,
        TestQueue::fifo().await,
    );
    let bodies: Vec<String> = (0..15).map(|n| login(&unique("fifo"), n)).collect();
    dlq.send(&bodies).await;
    let dlq_url = dlq.source.queue_url().to_string();
    let out = run_ok(&mut redrive(&queue, &db, &dlq_url, &["--dry-run"]));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("would move about 15 dead letters"),
        "{printed}"
    );
}
