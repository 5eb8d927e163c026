//! Erasure records nobody but an erase can move (attack review of migration 18): the operator role
//! cannot date an erasure back through the owner's function (a transaction held open, a record
//! written again), nor record an erasure that does not name what it records; an erase that waits
//! for the writes in flight is dated after its wait; and an erasure that commits while forwarding
//! to the dead-letter queue is retried is seen by the retry.

use std::time::Duration;

use serde_json::json;

use crate::audit_roles::{drop_role, role_from};
use crate::helpers::*;
use crate::redrive::peek;

fn login(user: &str, ip: &str, device: &str) -> String {
    json!({"user_id": user, "ip": ip, "device_id": device, "device_type": "ios"}).to_string()
}

async fn operator_role(db: &TestDb) -> (String, String) {
    let file = include_str!("../../docs/least-privilege-operator.sql");
    role_from(db, file, "login_etl_operator", "atk_op").await
}

async fn rows_of(db: &TestDb, user: &str) -> i64 {
    db.scalar(&format!(
        "SELECT count(*) FROM user_logins WHERE user_id = '{user}'"
    ))
    .await
}

/// The operator opens a transaction, waits for a real erase, then writes the subject's records
/// (it may read them) again through the owner's function: a record's time never moves back (the
/// function stamps the clock after its lock, and keeps the later of two times), so the subject's
/// login sent before the erase and still queued stays out.
#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_cannot_be_dated_back_through_the_function() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let subject = unique("atk-backdated");
    run_ok(binary(&queue, &db).args(["migrate"]));
    let (role, url) = operator_role(&db).await;
    let op = pg_client(&url).await;
    op.batch_execute("BEGIN").await.unwrap();
    let t0: chrono::DateTime<chrono::Utc> = op.query_one("SELECT now()", &[]).await.unwrap().get(0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Sent before the erasure, still queued when it happens.
    queue
        .send(&[login(&subject, "198.51.100.71", "dev-71")])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    run_ok(binary(&queue, &db).args(["erase", "--user-id", &subject, "--reason", "dsr-a1"]));
    let e1: chrono::DateTime<chrono::Utc> = db
        .scalar("SELECT min(erased_at) FROM erased_subjects")
        .await;
    op.batch_execute(
        "SELECT * FROM login_etl_erase_audited('nobody', \
           (SELECT array_agg(fingerprint) FROM erased_subjects), \
           (SELECT array_agg(fingerprint) FROM erased_subjects), '{}', \
           'u', 'u', 'routine', 0, 0); COMMIT",
    )
    .await
    .unwrap();
    let after: chrono::DateTime<chrono::Utc> = db
        .scalar("SELECT min(erased_at) FROM erased_subjects")
        .await;
    run_drain(&queue, &db, &[]);
    drop(op);
    drop_role(&db, &role).await;
    assert!(t0 < e1);
    assert_eq!(
        rows_of(&db, &subject).await,
        0,
        "the login sent before the erasure landed"
    );
    assert!(
        after >= e1,
        "the erasure was moved back from {e1} to {after}"
    );
}

/// An erase waiting for the writes in flight is dated after its wait: a login of the subject sent
/// while it waits stays out.
#[tokio::test(flavor = "multi_thread")]
async fn an_erase_is_dated_after_it_waited_for_the_writes_in_flight() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let subject = unique("atk-waiting");
    run_ok(binary(&queue, &db).args(["migrate"]));
    // A write in flight (what a writer's transaction holds).
    let writer = db.client().await;
    writer
        .batch_execute("BEGIN; LOCK TABLE user_logins IN ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut erase = binary(&queue, &db);
    erase.args(["erase", "--user-id", &subject, "--reason", "dsr-a5"]);
    let erasing = std::thread::spawn(move || run_ok(&mut erase));
    let probe = db.client().await;
    wait_until(
        "the erase waiting for the write",
        Duration::from_secs(60),
        || async {
            let waiting: i64 = (probe.query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND query LIKE 'LOCK TABLE user_logins IN SHARE ROW EXCLUSIVE%'",
                &[],
            ))
            .await
            .unwrap()
            .get(0);
            waiting > 0
        },
    )
    .await;
    // Sent while the erase waits.
    queue
        .send(&[login(&subject, "198.51.100.95", "dev-95")])
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    writer.batch_execute("COMMIT").await.unwrap();
    erasing.join().unwrap();
    run_drain(&queue, &db, &[]);
    assert_eq!(
        rows_of(&db, &subject).await,
        0,
        "a login sent while the erase waited landed"
    );
}

/// An erase that names the subject's fingerprints must record them: one handed other records is
/// refused, and the subject's rows stay (so nothing looks erased that is not).
#[tokio::test(flavor = "multi_thread")]
async fn an_erase_that_would_record_something_else_is_refused() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let subject = unique("atk-unrecorded");
    queue
        .send(&[login(&subject, "198.51.100.97", "dev-97")])
        .await;
    run_drain(&queue, &db, &[]);
    let keys = login_etl::mask::KeyRing::parse(TEST_KEY_HEX).unwrap();
    let fingerprints = login_etl::mask::user_fingerprints(&keys, &subject);
    let (role, url) = operator_role(&db).await;
    let op = pg_client(&url).await;
    let refused = op
        .query_one(
            "SELECT deleted FROM login_etl_erase_audited($1, ARRAY['junk'], $2, '{}', 'u', 'u', \
             'dsr-a2b', 0, 0)",
            &[&subject, &fingerprints],
        )
        .await
        .expect_err("an erase recording other fingerprints than it names");
    assert!(
        refused
            .as_db_error()
            .map(|e| e.message())
            .unwrap_or_default()
            .contains("records the fingerprints it names"),
        "{refused:?}"
    );
    drop(op);
    drop_role(&db, &role).await;
    assert_eq!(rows_of(&db, &subject).await, 1);
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM privacy_operations")
            .await,
        0
    );
}

/// Forwarding to the dead-letter queue is retried while SQS is down; an erasure that commits
/// meanwhile withholds the subject's refused login from the retry.
#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_during_a_forward_retry_withholds_from_it() {
    let (db, queue, dlq) = (
        TestDb::new().await,
        TestQueue::new(30).await,
        TestQueue::new(30).await,
    );
    let subject = unique("atk-forwarded");
    run_ok(binary(&queue, &db).args(["migrate"]));
    queue
        .send(&[
            json!({"user_id": subject, "ip": "198.51.100.99", "device_id": "dev-99"}).to_string(),
        ])
        .await;
    let proxy = SqsProxy::start(true).await;
    let holder = db.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE quarantined_messages IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut run = Spawned::new(
        binary(&queue, &db)
            .env("LOGIN_ETL_SQS_ENDPOINT", proxy.endpoint())
            .args([
                "run",
                "--drain",
                "--receivers",
                "1",
                "--dead-letter-queue",
                dlq.source.queue_url(),
            ]),
    );
    let probe = db.client().await;
    wait_until(
        "the consumer deciding what to forward",
        Duration::from_secs(60),
        || async {
            let n: i64 = probe
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND query LIKE '%WITH ORDINALITY AS k(id, entry, el, i)%'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            n > 0
        },
    )
    .await;
    proxy.set_up(false);
    holder.batch_execute("COMMIT").await.unwrap();
    wait_until("a forward retry", Duration::from_secs(60), || async {
        run.log().contains("dead-letter queue failed")
    })
    .await;
    run_ok(binary(&queue, &db).args(["erase", "--user-id", &subject, "--reason", "dsr-a7"]));
    proxy.set_up(true);
    let status = run.child.wait().unwrap();
    let entries: i64 = db.scalar("SELECT count(*) FROM quarantined_messages").await;
    let dead = peek(&dlq, 1).await;
    assert!(status.success(), "{status:?}");
    assert_eq!(entries, 0, "the subject's entry left out too");
    assert!(
        dead.iter().all(|(body, _)| !body.contains(&subject)),
        "the subject's pre-erasure login went to the DLQ raw after the erasure"
    );
}
