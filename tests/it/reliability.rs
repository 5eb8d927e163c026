//! Faults with real processes: the binary is killed, PostgreSQL is stopped, SQS becomes
//! unreachable, commits are slow, rows are refused. Each test asserts the exact final counts:
//! every message sent ends up exactly once, as a row or as a quarantine entry.

use std::time::Duration;

use crate::helpers::*;
use login_etl::sink::{DbSettings, PgOperator};

/// Backends of `db` other than ours (a killed client's backend lingers until its query ends).
async fn other_backends(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() \
             AND state <> 'idle'",
            &[&db.name],
        )
        .await
        .unwrap()
        .get(0)
}

/// Start `run --drain`, SIGKILL it while its transaction sits in the injected `pg_sleep`, then
/// wait until the server has finished with the orphaned transaction (rolled back or committed).
async fn kill_during_injected_sleep(queue: &TestQueue, db: &TestDb) {
    // All 100 messages share one batch: it is cut by count (100), not by age (60 s, which no
    // loaded machine reaches); held messages stay invisible meanwhile (the heartbeat).
    let mut run = Spawned::new(binary(queue, db).args([
        "run",
        "--drain",
        "--batch-size",
        "100",
        "--batch-max-wait-ms",
        "60000",
    ]));
    wait_until("the injected sleep", Duration::from_secs(120), || async {
        sleeping_backends(db).await > 0
    })
    .await;
    run.kill9();
    wait_until(
        "the orphaned transaction to end",
        Duration::from_secs(120),
        || async { other_backends(db).await == 0 },
    )
    .await;
}

/// Drain until the queue is empty (messages whose delete failed come back after the visibility
/// timeout and must be drained too), at most `rounds` times.
async fn drain_until_empty(queue: &TestQueue, db: &TestDb, rounds: usize) {
    for _ in 0..rounds {
        queue.until_none_in_flight().await;
        if queue.remaining().await == 0 {
            return;
        }
        drain(queue, db).await;
    }
    assert_eq!(queue.remaining().await, 0, "queue drained");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_between_copy_and_commit_loses_nothing_and_duplicates_nothing() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    db.sink().migrate().await.unwrap();
    slow_down_copy(&db, 10).await; // a window the poll below cannot miss on a loaded machine
    queue.send(&sample_bodies()).await;

    kill_during_injected_sleep(&queue, &db).await;
    let counts = db.counts().await;
    assert_eq!(
        (counts.rows, counts.quarantined(), counts.processed),
        (0, 0, 0),
        "rolled back"
    );
    assert_eq!(queue.remaining().await, 100, "nothing deleted");

    db.client()
        .await
        .batch_execute("DROP TRIGGER slow_copy ON user_logins")
        .await
        .unwrap();
    queue.until_none_in_flight().await;
    run_drain(&queue, &db, &[]);
    assert_landed(&db, &queue, 99, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_between_commit_and_delete_duplicates_nothing() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    db.sink().migrate().await.unwrap();
    // A deferred constraint trigger runs inside COMMIT: killing the client during its sleep leaves
    // a transaction that commits although the client never heard so, and never deleted anything.
    db.client()
        .await
        .batch_execute(
            "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF current_setting('login_etl_test.slept', true) IS DISTINCT FROM 'yes' THEN
                     PERFORM set_config('login_etl_test.slept', 'yes', true);
                     PERFORM pg_sleep(10);
                 END IF;
                 RETURN NULL;
             END $$;
             CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON processed_messages
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();",
        )
        .await
        .unwrap();
    queue.send(&sample_bodies()).await;

    kill_during_injected_sleep(&queue, &db).await;
    let committed = db.counts().await;
    assert_eq!(
        (committed.rows, committed.quarantined(), committed.processed),
        (99, 1, 100)
    );
    assert_eq!(queue.remaining().await, 100, "committed but never deleted");

    queue.until_none_in_flight().await;
    let out = run_drain(&queue, &db, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The quarantined one is tried again: still refused, its entry counts the attempt.
    assert!(
        stdout.contains("written 0, quarantined 0, duplicates skipped 100"),
        "{stdout}"
    );
    assert_eq!(db.counts().await, committed, "no row twice");
    let attempts: i32 = db.scalar("SELECT attempts FROM quarantined_messages").await;
    assert_eq!(attempts, 2);
    assert_landed(&db, &queue, 99, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_stopped_mid_drain_is_survived_with_exact_counts() {
    let cluster = TempCluster::new();
    let queue = TestQueue::new(30).await;
    let bodies = synthetic(5000, 11);
    queue.send(&bodies).await;
    let url = cluster.url("postgres");

    let mut run = Spawned::new(binary_for(&queue, &url).args([
        "run",
        "--drain",
        "--batch-size",
        "100",
        "--receivers",
        "1",
    ]));
    wait_until("the first rows", Duration::from_secs(60), || async {
        let mut operator = PgOperator::new(&DbSettings::from_url(&url)).unwrap();
        operator.counts().await.map(|c| c.rows > 0).unwrap_or(false)
    })
    .await;
    cluster.stop();
    // Down until login-etl has met the outage (not for a guessed time): a batch write failed.
    wait_until("the outage met", Duration::from_secs(120), || async {
        run.log()
            .contains("batch write failed, nothing deleted, retrying")
    })
    .await;
    cluster.start();
    let status = run.wait(Duration::from_secs(120)).await;
    let log = run.log();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("batch write failed, nothing deleted, retrying"),
        "the outage was seen"
    );

    let counts = PgOperator::new(&DbSettings::from_url(&url))
        .unwrap()
        .counts()
        .await
        .unwrap();
    let valid = valid_count(&bodies);
    assert_eq!(counts.rows, valid, "every valid message once");
    assert_eq!(counts.quarantined(), 5000 - valid);
    assert_eq!(counts.processed, 5000);
    assert_eq!(queue.remaining().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sqs_unreachable_at_start_and_mid_drain_is_survived_with_exact_counts() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    let bodies = synthetic(4000, 12);
    queue.send(&bodies).await;
    let proxy = SqsProxy::start(false).await;

    let mut run = Spawned::new(
        binary(&queue, &db)
            .env("LOGIN_ETL_SQS_ENDPOINT", proxy.endpoint())
            .args(["run", "--drain", "--batch-size", "50", "--receivers", "1"]),
    );
    wait_until("a retry at start", Duration::from_secs(30), || async {
        run.log().contains("SQS not reachable yet, retrying")
    })
    .await;
    proxy.set_up(true);
    wait_until("the first rows", Duration::from_secs(60), || async {
        db.counts().await.rows > 0
    })
    .await;
    let failed_receives = || run.log().matches("receive failed, retrying").count();
    let before = failed_receives();
    proxy.set_up(false);
    // Down until login-etl has met the outage (not for a guessed time): a receive failed.
    wait_until("the outage met", Duration::from_secs(120), || async {
        failed_receives() > before
    })
    .await;
    proxy.set_up(true);
    let status = run.wait(Duration::from_secs(120)).await;
    let log = run.log();
    assert!(status.success(), "{log}");

    // Deletes that failed during the outage come back after the visibility timeout: drain them.
    drain_until_empty(&queue, &db, 5).await;
    let valid = valid_count(&bodies);
    assert_landed(&db, &queue, valid, 4000 - valid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_commit_gets_its_visibility_extended_instead_of_being_redelivered() {
    slow_commit_keeps_messages_invisible(&TestQueue::new(2).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_postgres_rejects_are_isolated_and_quarantined_while_the_rest_commits() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    // A rule our validation doesn't know about: PostgreSQL is the one to refuse these rows.
    refuse_web_logins(&db).await;
    let bodies = sample_bodies();
    let web = bodies
        .iter()
        .filter(|b| b.contains(r#""device_type":"web""#))
        .count() as i64;
    assert!(web > 0);
    queue.send(&bodies).await;

    let summary = drain(&queue, &db).await;
    assert_eq!(summary.written as i64, 99 - web, "{summary}");
    let counts = db.counts().await;
    assert_eq!(counts.rows, 99 - web);
    assert_eq!(
        counts.quarantined_by_code,
        vec![
            ("invalid_fields".into(), 1),
            ("rejected_by_database".into(), web)
        ]
    );
    assert_eq!(counts.processed, 100);
    let reason: String = db
        .client()
        .await
        .query_one(
            "SELECT reason FROM quarantined_messages WHERE reason_code = 'rejected_by_database' LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        reason.contains("SQLSTATE 23514") && reason.contains("no_web_logins"),
        "{reason}"
    );
    assert_eq!(queue.remaining().await, 0);
}

/// Deliveries that died with their consumer are no evidence against a message: past
/// --max-receives it is processed alone, and lands as a row (or with its precise reason).
#[tokio::test(flavor = "multi_thread")]
async fn a_message_received_too_often_is_processed_alone_and_lands_once() {
    received_too_often_is_processed_alone(&TestQueue::new(1).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn quarantined_messages_are_forwarded_raw_to_the_dead_letter_queue() {
    dead_letters_are_forwarded_raw(&TestQueue::new(30).await, &TestQueue::new(30).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn database_authentication_failures_are_fatal_at_once() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    for (url, expect) in [
        (
            "postgres://no_such_role_login_etl@127.0.0.1:5432/postgres",
            "role \"no_such_role_login_etl\" does not exist",
        ),
        (
            "postgres://postgres@127.0.0.1:5432/no_such_db_login_etl",
            "database \"no_such_db_login_etl\" does not exist",
        ),
    ] {
        let started = std::time::Instant::now();
        let out = run_binary(
            binary(&queue, &db)
                .env("LOGIN_ETL_DATABASE_URL", url)
                .args(["run", "--drain"]),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(expect), "{stderr}");
        assert_stopped_at_once(&stderr, started.elapsed());
    }
}
