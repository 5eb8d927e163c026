//! Erasure, re-keying interrupted by SIGKILL, key usage and retirement, retention; and the privacy
//! scan with every option on.

use std::time::Duration;

use chrono::Utc;
use login_etl::mask::{Field, KeyRing, Masker, StrategyName};
use login_etl::transform;

use crate::helpers::*;
use crate::network_pseudonyms::login;

#[tokio::test(flavor = "multi_thread")]
async fn erase_removes_exactly_one_users_rows_and_quarantine_and_redelivery_adds_nothing() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let mut bodies = sample_bodies();
    let subject = "erase-me-7f3a";
    bodies.push(login(subject, "192.0.2.10"));
    bodies.push(login(subject, "192.0.2.11"));
    // A bad message of the same user (no device_type): quarantined, with the user id in its body.
    let mut bad: serde_json::Value = serde_json::from_str(&login(subject, "192.0.2.12")).unwrap();
    bad.as_object_mut().unwrap().remove("device_type");
    bodies.push(bad.to_string());
    let ids = queue.send(&bodies).await;
    run_drain(&queue, &db, &[]);
    assert_landed(&db, &queue, 101, 2).await;

    let dry = run_binary(binary(&queue, &db).args([
        "erase",
        "--user-id",
        subject,
        "--reason",
        "DSR-1",
        "--dry-run",
    ]));
    assert!(String::from_utf8_lossy(&dry.stdout)
        .contains("would erase 2 rows from user_logins and 1 quarantine entries"));
    assert_eq!(db.counts().await.rows, 101, "dry run changed nothing");

    let erase = run_binary(binary(&queue, &db).args([
        "erase",
        "--user-id",
        subject,
        "--reason",
        "DSR-1",
        "--actor",
        "dpo@example.com",
    ]));
    let said = String::from_utf8_lossy(&erase.stdout);
    assert!(
        erase.status.success() && said.contains("erased 2 rows"),
        "{said}"
    );
    let counts = db.counts().await;
    assert_eq!(
        (counts.rows, counts.quarantined()),
        (99, 1),
        "only the subject's"
    );
    let client = db.client().await;
    let audit = client
        .query_one(
            "SELECT operation, actor, reason, rows, quarantined, row_to_json(p)::text FROM privacy_operations p",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(audit.get::<_, String>(0), "erase");
    assert_eq!(audit.get::<_, String>(1), "dpo@example.com");
    assert_eq!((audit.get::<_, i64>(3), audit.get::<_, i64>(4)), (2, 1));
    assert!(
        !audit.get::<_, String>(5).contains(subject),
        "no user id in the audit"
    );

    // A redelivery of one of the subject's messages: the ledger still knows its id. (The
    // consumer holds the keys, as `run` does: a keyless one stops once anyone is erased.)
    let mut sink = db.sink();
    sink.honour_erasures(&KeyRing::parse(TEST_KEY_HEX).unwrap());
    let envelope = envelope(ids[100].as_str(), &bodies[100], 0);
    let outcomes = transform::process(&envelope, &masker(), Utc::now());
    let again = sink.write_batch(&outcomes).await.unwrap();
    assert_eq!((again.rows, again.duplicates), (0, 1));
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM user_logins WHERE user_id = $1",
            &[&subject],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

const K1: &str = "k1:1111111111111111111111111111111111111111111111111111111111111111";
const K2: &str = "k2:2222222222222222222222222222222222222222222222222222222222222222";

/// (user, raw ip, raw device, raw network address) of every row, revealed with `ring`.
async fn revealed(db: &TestDb, ring: &str) -> Vec<(String, String, String, String)> {
    let keys = KeyRing::parse(ring).unwrap();
    let masker = Masker::new(StrategyName::AesSiv, Some(&keys)).unwrap();
    let mut rows: Vec<_> = db
        .client()
        .await
        .query(
            "SELECT user_id, masked_ip, masked_device_id, masked_ip_network FROM user_logins",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                masker.reveal(Field::Ip, r.get(1)).unwrap(),
                masker.reveal(Field::DeviceId, r.get(2)).unwrap(),
                login_etl::mask::network::reveal_pfx(&keys, r.get(3)).unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn rekey_killed_midway_and_restarted_moves_every_value_to_the_new_key() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let bodies = synthetic(600, 17);
    let valid = valid_count(&bodies);
    queue.send(&bodies).await;
    run_ok(
        binary(&queue, &db)
            .env("LOGIN_ETL_MASK_KEY", K1)
            .env("LOGIN_ETL_MASK_STRATEGY", "aes-siv")
            .env("LOGIN_ETL_IP_NETWORK_MASK", "ipcrypt-pfx")
            .args(["run", "--drain"]),
    );
    let before = revealed(&db, K1).await;
    assert_eq!(before.len() as i64, valid);

    // k1 in use: retiring it is refused with its count.
    // (retire-key checks the ring against the recorded fingerprints: it needs this test's keys.)
    let retire = run_binary(binary(&queue, &db).env("LOGIN_ETL_MASK_KEY", K1).args([
        "retire-key",
        "--id",
        "k1",
    ]));
    let said = String::from_utf8_lossy(&retire.stderr);
    assert_eq!(retire.status.code(), Some(1));
    assert!(said.contains(&format!("{valid} masked_ip")), "{said}");

    let ring = format!("{K2},{K1}");
    let rekey = || {
        let mut cmd = binary(&queue, &db);
        cmd.env("LOGIN_ETL_MASK_KEY", &ring).args([
            "rekey",
            "--to",
            "k2",
            "--batch",
            "5",
            "--reason",
            "rotation test",
        ]);
        cmd
    };
    let mut first = Spawned::new(&mut rekey());
    wait_until("some batches re-keyed", Duration::from_secs(60), || async {
        db.client()
            .await
            .query_one(
                "SELECT coalesce(sum(rows), 0)::bigint FROM privacy_operations",
                &[],
            )
            .await
            .map(|r| r.get::<_, i64>(0) >= 20)
            .unwrap_or(false)
    })
    .await;
    first.kill9();
    let done_at_kill: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM user_logins WHERE masked_ip LIKE 'k2:%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        done_at_kill > 0 && done_at_kill < valid,
        "killed midway ({done_at_kill})"
    );

    run_ok(&mut rekey());
    let client = db.client().await;
    let old: i64 = client
        .query_one(
            "SELECT count(*) FROM user_logins WHERE masked_ip NOT LIKE 'k2:%' \
             OR masked_device_id NOT LIKE 'k2:%' OR masked_ip_network NOT LIKE 'k2:pfx:%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(old, 0, "every value under the new key");
    assert_eq!(
        revealed(&db, &ring).await,
        before,
        "every value reveals as before"
    );
    let audited: i64 = client
        .query_one(
            "SELECT sum(rows)::bigint FROM privacy_operations WHERE operation = 'rekey'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, valid, "both runs audited, exactly");

    let usage = run_binary(binary(&queue, &db).args(["report", "keys", "--format", "json"]));
    let usage: serde_json::Value = serde_json::from_slice(&usage.stdout).unwrap();
    assert!(
        usage
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["column"] != "quarantined_messages")
            .all(|u| u["key_id"] == "k2"),
        "{usage}"
    );
    // The quarantine bodies keep their k1 masks (not re-keyed): retiring k1 stays refused.
    let retire = run_binary(binary(&queue, &db).env("LOGIN_ETL_MASK_KEY", &ring).args([
        "retire-key",
        "--id",
        "k1",
    ]));
    assert_eq!(retire.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&retire.stderr).contains("quarantined_messages"));
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_exactly_the_rows_older_than_retain_days_and_audits_it() {
    // Plain, and partitioned by month (whole old months are dropped, the rest deleted).
    for partitioned in [false, true] {
        let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
        let mut sink = db.sink();
        sink.migrate().await.unwrap();
        if partitioned {
            let mut operator = db.operator();
            operator.partition_by_month().await.unwrap();
            let first = (Utc::now() - chrono::Duration::days(120)).date_naive();
            operator.ensure_partitions_from(Some(first)).await.unwrap();
        }
        let bodies = synthetic(300, 23);
        let outcomes: Vec<_> = bodies
            .iter()
            .enumerate()
            .flat_map(|(i, b)| {
                let days_ago = [0, 29, 31, 90][i % 4];
                let envelope = envelope(&format!("ret-{i}"), b, days_ago);
                transform::process(&envelope, &masker(), Utc::now())
            })
            .collect();
        sink.write_batch(&outcomes).await.unwrap();
        let client = db.client().await;
        let count = |sql: &'static str| {
            let client = &client;
            async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
        };
        let old =
            count("SELECT count(*) FROM user_logins WHERE create_date < current_date - 30").await;
        let total = count("SELECT count(*) FROM user_logins").await;
        assert!(old > 0);

        run_ok(
            binary(&queue, &db)
                .env("LOGIN_ETL_RETAIN_DAYS", "30")
                .args(["run", "--drain"]),
        );
        assert_eq!(
            count("SELECT count(*) FROM user_logins WHERE create_date < current_date - 30").await,
            0,
            "partitioned: {partitioned}"
        );
        assert_eq!(
            count("SELECT count(*) FROM user_logins").await,
            total - old,
            "only those"
        );
        assert_eq!(
            count("SELECT sum(rows)::bigint FROM privacy_operations WHERE operation = 'retention'")
                .await,
            old
        );
        if partitioned {
            let dropped =
                count("SELECT count(*) FROM privacy_operations WHERE detail ? 'dropped_partition'")
                    .await;
            assert!(
                dropped >= 2,
                "the 90-day-old month went whole ({dropped} partitions)"
            );
        }
    }
}

/// Every raw ip and device_id of the input, searched in every table, every log line and the
/// metrics, with every privacy option on: zero hits. (pfx pseudonyms are addresses too, but
/// encrypted ones: a hit would mean a real address was stored.)
#[tokio::test(flavor = "multi_thread")]
async fn the_privacy_scan_finds_nothing_with_every_option_on() {
    let bodies = synthetic(300, 29);
    let raw = raw_pii(&bodies);
    assert!(raw.len() > 500);
    for network in ["hmac", "ipcrypt-pfx"] {
        let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
        db.sink().migrate().await.unwrap();
        queue.send(&bodies).await;
        let ring = format!("{K2},{K1}");
        let mut run = Spawned::new(
            binary(&queue, &db)
                .env("LOGIN_ETL_MASK_KEY", K1)
                .env("LOGIN_ETL_MASK_STRATEGY", "aes-siv")
                .env("LOGIN_ETL_IP_NETWORK_MASK", network)
                .env("LOGIN_ETL_RETAIN_DAYS", "400")
                .env("LOGIN_ETL_METRICS_ADDR", ANY_PORT)
                .args(["run", "--batch-size", "50"]),
        );
        let port = run.metrics_port().await;
        wait_until("the queue drained", Duration::from_secs(60), || async {
            db.counts().await.processed == 300
        })
        .await;
        let (_, metrics) = http_get(port, "/metrics").await.expect("metrics served");
        run.sigterm();
        assert!(
            run.wait(Duration::from_secs(30)).await.success(),
            "{}",
            run.log()
        );
        let mut logs = run.log();
        let user = serde_json::from_str::<serde_json::Value>(&bodies[0]).unwrap()["user_id"]
            .as_str()
            .unwrap()
            .to_string();
        for args in [
            vec!["rekey", "--to", "k2", "--batch", "40"],
            vec!["report", "duplicates"],
            vec!["report", "keys"],
            vec!["erase", "--user-id", &user, "--reason", "scan", "--dry-run"],
            vec!["erase", "--user-id", &user, "--reason", "scan"],
            vec!["status"],
        ] {
            let out = run_binary(
                binary(&queue, &db)
                    .env("LOGIN_ETL_MASK_KEY", &ring)
                    .args(&args),
            );
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            logs += &String::from_utf8_lossy(&out.stderr);
            logs += &String::from_utf8_lossy(&out.stdout);
        }
        assert_no_raw_pii(
            &db.dump_all_tables().await,
            &raw,
            &format!("the {network} database"),
        );
        assert_no_raw_pii(&logs, &raw, &format!("the {network} logs and outputs"));
        assert_no_raw_pii(&metrics, &raw, &format!("the {network} metrics"));
    }
}
