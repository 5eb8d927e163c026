//! An attack review of migration 18 (issue 32), each case failing before migration 20 and its
//! code: a keyless consumer that was running before the first erase stops instead of landing the
//! subject's queued login; an erasure record dated `infinity` is read failing closed, not a
//! crash; at a database default of REPEATABLE READ the erase and the writers still serialise.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

async fn rows_of(db: &TestDb, user: &str) -> i64 {
    db.scalar(&format!(
        "SELECT count(*) FROM user_logins WHERE user_id = '{user}'"
    ))
    .await
}

/// A `--mask-strategy sha256` consumer (no keys) checks for erasure records only when it starts.
/// One that was running before the first erase writes the subject's login sent before it.
#[tokio::test(flavor = "multi_thread")]
async fn a_keyless_consumer_running_before_the_first_erase_stops_instead_of_landing_the_login() {
    consumer_running_before_the_erase(true).await;
}

/// The control: a keyed consumer in the same position leaves the login out.
#[tokio::test(flavor = "multi_thread")]
async fn control_a_keyed_consumer_running_before_the_erase_leaves_it_out() {
    consumer_running_before_the_erase(false).await;
}

async fn consumer_running_before_the_erase(keyless: bool) {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let subject = unique("keyless-erased");
    run_ok(binary(&queue, &db).args(["migrate"]));
    let mut cmd = binary(&queue, &db);
    match keyless {
        true => cmd
            .env_remove("LOGIN_ETL_MASK_KEY")
            .args(["run", "--mask-strategy", "sha256"]),
        false => cmd.args(["run"]),
    };
    let mut consumer = Spawned::new(&mut cmd);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Sent now, delivered in 5 s: queued when the erase commits.
    let body = json!({"user_id": subject, "ip": "198.51.100.90", "device_id": "dev-90",
                      "device_type": "ios"})
    .to_string();
    let client = login_etl::source::sqs::client(&queue.settings()).await;
    client
        .send_message()
        .queue_url(queue.source.queue_url())
        .message_body(body)
        .delay_seconds(5)
        .send()
        .await
        .unwrap();
    run_ok(binary(&queue, &db).args(["erase", "--user-id", &subject, "--reason", "keyless"]));
    let start = Instant::now();
    while rows_of(&db, &subject).await == 0
        && start.elapsed() < Duration::from_secs(12)
        && consumer.child.try_wait().unwrap().is_none()
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let landed = rows_of(&db, &subject).await;
    if keyless {
        let status = consumer.wait(Duration::from_secs(30)).await;
        assert!(
            !status.success(),
            "the keyless consumer went on after the erase"
        );
        assert!(
            consumer
                .log()
                .contains("was erased while this --mask-strategy sha256 consumer ran"),
            "{}",
            consumer.log()
        );
    }
    let _ = consumer.child.kill();
    let _ = consumer.child.wait();
    assert_eq!(
        landed,
        0,
        "the erased subject's login sent before the erasure landed after it: {}",
        consumer
            .log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// An erasure record dated `infinity` (written before migration 18 by a role that could then
/// move records, and left in place by the migration): can a writer read it?
#[tokio::test(flavor = "multi_thread")]
async fn an_infinite_erasure_record_is_read_failing_closed() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let subject = unique("infinite");
    run_ok(binary(&queue, &db).args(["migrate"]));
    run_ok(binary(&queue, &db).args(["erase", "--user-id", &subject, "--reason", "inf"]));
    (db.client().await)
        .batch_execute("UPDATE erased_subjects SET erased_at = 'infinity'")
        .await
        .unwrap();
    let login = json!({"user_id": subject, "ip": "198.51.100.91", "device_id": "dev-91",
                       "device_type": "ios"});
    let other = json!({"user_id": unique("other"), "ip": "198.51.100.92",
                       "device_id": "dev-92", "device_type": "ios"});
    queue.send(&[login.to_string(), other.to_string()]).await;
    let out =
        run_binary(binary(&queue, &db).args(["run", "--drain", "--write-retry-seconds", "5"]));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the consumer stopped on the record: {log}"
    );
    // `infinity` erases every login of the subject, whenever sent; the other one lands.
    assert_eq!(
        (rows_of(&db, &subject).await, db.counts().await.rows),
        (0, 1)
    );
}

/// With `default_transaction_isolation = 'repeatable read'` (set on the database or a role by a
/// DBA): before, `begin()`'s first statement took the snapshot before the `LOCK` waited, so a
/// writer in flight when the erase started kept its row and a batch that started while the erase
/// held its lock wrote the subject's login sent before the erasure. Transactions now start READ
/// COMMITTED whatever the default, and the erase function refuses any other level.
#[tokio::test(flavor = "multi_thread")]
async fn under_repeatable_read_by_default_the_erasure_still_deletes_and_stops_what_it_waited_for() {
    erase_between_writers(true).await;
}

/// The control: the same interleaving at the default READ COMMITTED holds.
#[tokio::test(flavor = "multi_thread")]
async fn control_at_read_committed_the_same_interleaving_holds() {
    erase_between_writers(false).await;
}

async fn erase_between_writers(repeatable_read: bool) {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let subject = unique("rr-erased");
    run_ok(binary(&queue, &db).args(["migrate"]));
    if repeatable_read {
        (db.client().await)
            .batch_execute(&format!(
                "ALTER DATABASE {} SET default_transaction_isolation = 'repeatable read'",
                db.name
            ))
            .await
            .unwrap();
    }
    // The subject's login, sent before the erasure.
    let body = json!({"user_id": subject, "ip": "198.51.100.93", "device_id": "dev-93",
                      "device_type": "ios"});
    queue.send(&[body.to_string()]).await;
    // A writer in flight (as the writers do: ROW EXCLUSIVE, then its row of the subject).
    let mut in_flight = db.client().await;
    let tx = in_flight.transaction().await.unwrap();
    tx.batch_execute(&format!(
        "LOCK TABLE user_logins IN ROW EXCLUSIVE MODE; \
         INSERT INTO user_logins (user_id, masked_ip, sent_at) VALUES ('{subject}', 'k1:x', now())"
    ))
    .await
    .unwrap();
    // The erase starts and waits for it; a consumer's batch starts behind the erase.
    let mut erase = binary(&queue, &db);
    erase.args(["erase", "--user-id", &subject, "--reason", "rr"]);
    let erase = tokio::task::spawn_blocking(move || erase.output().unwrap());
    let waiting = |n: i64| {
        format!(
            "SELECT count(*) >= {n} FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'"
        )
    };
    let start = Instant::now();
    while !db.scalar::<bool>(&waiting(1)).await && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut consumer = binary(&queue, &db);
    consumer.args(["run", "--drain"]);
    let consumer = tokio::task::spawn_blocking(move || consumer.output().unwrap());
    while !db.scalar::<bool>(&waiting(2)).await && start.elapsed() < Duration::from_secs(40) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        db.scalar::<bool>(&waiting(2)).await,
        "the consumer's batch never waited"
    );
    tx.commit().await.unwrap();
    let erased = erase.await.unwrap();
    assert!(
        erased.status.success(),
        "{}",
        String::from_utf8_lossy(&erased.stderr)
    );
    let consumed = consumer.await.unwrap();
    assert!(
        consumed.status.success(),
        "{}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    let rows = db
        .client()
        .await
        .query(
            &format!(
                "SELECT masked_ip, sent_at < (SELECT max(erased_at) FROM erased_subjects) \
                 FROM user_logins WHERE user_id = '{subject}'"
            ),
            &[],
        )
        .await
        .unwrap();
    let rows: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    eprintln!("erase said: {}", String::from_utf8_lossy(&erased.stdout));
    assert!(
        rows.is_empty(),
        "rows of the subject sent before the erasure after it committed: {rows:?}"
    );
}

/// The operator role cannot write an `erase` audit row itself (only the owner's function does,
/// with the records behind it); its other audit rows are stamped with the clock of their
/// writing; and a TRIGGER grant on a table the function writes is taken back by migration 20.
#[tokio::test(flavor = "multi_thread")]
async fn erase_audit_rows_come_only_from_the_function_and_no_role_keeps_trigger() {
    let db = TestDb::new().await;
    db.sink().migrate().await.unwrap();
    let file = include_str!("../../docs/least-privilege-operator.sql");
    let (role, url) = crate::audit_roles::role_from(&db, file, "login_etl_operator", "rv_op").await;
    let (operator, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let forged = operator
        .execute(
            "INSERT INTO privacy_operations (operation, os_user, actor, reason, rows, quarantined, \
             detail) VALUES ('erase', 'o', 'a', 'r', 0, 0, '{\"erased_at\": \"2020-01-01\"}')",
            &[],
        )
        .await
        .expect_err("an erase audit row written by hand");
    let why = forged.as_db_error().map(|e| e.message().to_string());
    assert!(
        why.as_deref().unwrap_or("").contains("written only by"),
        "{forged:?}"
    );
    // Held open for a while, a transaction's row is still dated when it is written.
    operator.batch_execute("BEGIN").await.unwrap();
    let started: chrono::DateTime<chrono::Utc> = operator
        .query_one("SELECT now()", &[])
        .await
        .unwrap()
        .get(0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let at: chrono::DateTime<chrono::Utc> = operator
        .query_one(
            "INSERT INTO privacy_operations (operation, os_user, actor, reason, rows, \
             quarantined, detail) VALUES ('retention', 'o', 'a', 'r', 0, 0, '{}') RETURNING at",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    operator.batch_execute("ROLLBACK").await.unwrap();
    assert!(
        at - started >= chrono::Duration::milliseconds(1000),
        "{started} {at}"
    );

    let owner = db.client().await;
    owner
        .batch_execute(&format!(
            "GRANT TRIGGER, REFERENCES ON user_logins, erased_subjects TO {role}"
        ))
        .await
        .unwrap();
    owner
        .batch_execute(include_str!("../../migrations/0020_erasure_review.sql"))
        .await
        .unwrap();
    let kept: bool = owner
        .query_one(
            "SELECT has_table_privilege($1, 'user_logins', 'TRIGGER') \
                 OR has_table_privilege($1, 'erased_subjects', 'TRIGGER') \
                 OR has_table_privilege($1, 'user_logins', 'REFERENCES')",
            &[&role],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!kept, "TRIGGER or REFERENCES survived");
}

/// A reason or actor that holds an address is refused before anything is done, and not printed
/// back: audit rows keep free text for years.
#[tokio::test(flavor = "multi_thread")]
async fn an_address_in_an_audit_reason_is_refused_without_printing_it() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    db.sink().migrate().await.unwrap();
    for args in [
        [
            "--user-id",
            "u-1",
            "--reason",
            "DSR-1: alice at 203.0.113.5",
            "--actor",
            "ops",
        ],
        [
            "--user-id",
            "u-1",
            "--reason",
            "DSR-2",
            "--actor",
            "ops 2001:db8::7",
        ],
    ] {
        let out = run_binary(binary(&queue, &db).arg("erase").args(args));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{said}");
        assert!(said.contains("looks like an IP address"), "{said}");
        assert!(
            !said.contains("203.0.113.5") && !said.contains("2001:db8"),
            "{said}"
        );
    }
    let audited: i64 = db.scalar("SELECT count(*) FROM privacy_operations").await;
    assert_eq!(audited, 0);
}
