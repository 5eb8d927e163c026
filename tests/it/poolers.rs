//! Through PgBouncer in `pool_mode = transaction` (each transaction may get another server
//! connection, so nothing may rely on session state): migrate with monthly partitions, the
//! sample and a bulk drain, the maintenance loops (ledger pruning, partitions ahead, row and
//! quarantine retention), status, reveal, erase and rekey all work, with exact counts.

use std::time::Duration;

use crate::helpers::*;

const K1: &str = "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const K2: &str = "k2:2222222222222222222222222222222222222222222222222222222222222222";

#[tokio::test(flavor = "multi_thread")]
async fn everything_works_through_pgbouncer_in_transaction_mode() {
    let bouncer = PgBouncer::start();
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let url = bouncer.url(&db.name);
    let cmd = |args: &[&str]| {
        let mut cmd = binary_for(&queue, &url);
        cmd.env("LOGIN_ETL_MASK_KEY", K1)
            .env("LOGIN_ETL_MASK_STRATEGY", "aes-siv")
            .args(args);
        cmd
    };
    run_ok(&mut cmd(&["migrate", "--partition-by-month"]));
    let mut bodies = sample_bodies();
    bodies.extend(synthetic(20_000, 77));
    queue.send(&bodies).await;
    run_ok(&mut cmd(&[
        "run",
        "--drain",
        "--receivers",
        "4",
        "--retain-days",
        "400",
        "--quarantine-retention-days",
        "30",
    ]));
    let counts = db.counts().await;
    let valid = valid_count(&bodies);
    assert_eq!(counts.rows, valid);
    assert_eq!(counts.processed, bodies.len() as i64);
    assert_eq!(counts.quarantined(), bodies.len() as i64 - valid);
    let client = db.client().await;
    let partitions: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'user_logins'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(partitions >= 5, "{partitions} partitions");

    // Age some of it, then let one maintenance round run through the pooler.
    client
        .batch_execute(
            "UPDATE processed_messages SET processed_at = now() - interval '20 days'
               WHERE message_id IN (SELECT message_id FROM processed_messages LIMIT 300);
             UPDATE quarantined_messages SET received_at = now() - interval '40 days'
               WHERE message_id IN (SELECT message_id FROM quarantined_messages LIMIT 5);",
        )
        .await
        .unwrap();
    run_ok(&mut cmd(&[
        "run",
        "--drain",
        "--ledger-retention-days",
        "5",
        "--quarantine-retention-days",
        "30",
    ]));
    let after = db.counts().await;
    assert_eq!(
        after.processed,
        counts.processed - 300,
        "ledger pruned through the pooler"
    );
    assert_eq!(
        after.quarantined(),
        counts.quarantined() - 5,
        "quarantine retention"
    );

    let user: String = client
        .query_one("SELECT user_id FROM user_logins LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    for args in [
        vec!["status"],
        vec!["status", "--format", "json"],
        vec!["report", "duplicates"],
        vec!["report", "keys"],
        vec!["reveal", "--user-id", &user, "--reason", "pooler test"],
        vec!["erase", "--user-id", &user, "--reason", "pooler test"],
    ] {
        run_ok(&mut cmd(&args));
    }
    let rekey = run_ok(
        cmd(&[
            "rekey",
            "--to",
            "k2",
            "--batch",
            "2000",
            "--reason",
            "pooler test",
        ])
        .env("LOGIN_ETL_MASK_KEY", format!("{K2},{K1}")),
    );
    eprintln!("{}", String::from_utf8_lossy(&rekey.stdout));
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM user_logins WHERE masked_ip LIKE 'k1:%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "every row re-keyed through the pooler");
    let _ = Duration::ZERO;
}
