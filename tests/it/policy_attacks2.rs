//! The second attack review's cases (helper-30) against policy records and `preview
//! --from-queue`, kept as regressions: rows from before migration 21 are read for their newest
//! strategy and any network pseudonym; runs without a policy file behave as before (turning network
//! pseudonyms off, an operator's retention-only run); preview hands every message back, leaks
//! nothing, and refuses a queue whose redrive policy it could exhaust.

use serde_json::json;

use crate::helpers::*;

fn login(user: &str, ip: &str, time: &str) -> String {
    json!({"version": "0", "id": format!("ev-{user}-{time}"), "detail-type": "UserLogin",
        "source": "app.auth", "time": time, "detail": {"user_id": user, "device_type": "ios",
        "ip": ip, "device_id": format!("dev-{user}"), "locale": "NZ", "app_version": "2.3.0"}})
    .to_string()
}

fn policy_file(text: &str) -> String {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("login-etl-attack2")));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

async fn back_to_20(db: &TestDb) {
    (db.client().await.batch_execute(
        "DROP TABLE privacy_policy; ALTER TABLE user_logins DROP COLUMN period; \
         DELETE FROM login_etl_schema_migrations WHERE version = 21",
    ))
    .await
    .unwrap();
}

fn tail(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.lines().rev().take(2).collect::<Vec<_>>().join(" | ")
}

/// Rows from before migration 21: the older ones without a network pseudonym (the flag was off),
/// the newer ones with hmac network pseudonyms. Migration 21 records `network` (any row has one),
/// so a policy cannot fill the column with ipcrypt-pfx values next to the hmac ones.
#[tokio::test(flavor = "multi_thread")]
async fn attack2_legacy_sample_with_null_network() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    queue
        .send(&[login("a", "203.0.113.9", "2026-01-10T08:30:00Z")])
        .await;
    run_drain(&queue, &db, &[]);
    queue
        .send(&[login("b", "203.0.113.10", "2026-01-11T08:30:00Z")])
        .await;
    run_drain(&queue, &db, &["--ip-network-mask", "hmac"]);
    back_to_20(&db).await;
    db.sink().migrate().await.unwrap();
    let legacy: serde_json::Value = db
        .scalar("SELECT columns FROM privacy_policy WHERE fingerprint = 'pol-000000000000'")
        .await;
    eprintln!("legacy record: {legacy}");
    assert_eq!(legacy["masked_ip_network"], "network", "{legacy}");
    queue
        .send(&[login("c", "203.0.113.11", "2026-01-12T08:30:00Z")])
        .await;
    let pfx = policy_file(&NET.replace(
        "store = \"network\"\nprefix_v4 = 24\nprefix_v6 = 48",
        "store = \"ipcrypt-pfx\"",
    ));
    let out = run_binary(binary(&queue, &db).args(["run", "--drain", "--policy", &pfx]));
    eprintln!("exit {:?}: {}", out.status.code(), tail(&out));
    let kinds: Vec<String> = (db.client().await)
        .query(
            "SELECT user_id || '=' || coalesce(CASE WHEN masked_ip_network LIKE '%:pfx:%' \
             THEN 'pfx' ELSE 'hmac' END || '', '') || coalesce(masked_ip_network, 'NULL') \
             FROM user_logins ORDER BY user_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    assert!(
        !out.status.success(),
        "masked_ip_network now holds hmac and ipcrypt-pfx pseudonyms side by side: {kinds:?}"
    );
}

/// `user_id`, `masked_ip`, `masked_device_id`, `masked_ip_network` of a row.
type Columns = (String, Option<String>, Option<String>, Option<String>);

const NET: &str = "version = 1\n[user_id]\nstore = \"keep\"\n[ip]\nstore = \"network\"\nprefix_v4 = 24\nprefix_v6 = 48\n[device_id]\nstore = \"hmac\"\n[device_type]\nstore = \"keep\"\n[locale]\nstore = \"keep\"\n[app_version]\nstore = \"keep\"\n[create_date]\nstore = \"keep\"\n[sent_at]\nstore = \"keep\"\n";

/// A policy storing `network-24-48` in masked_ip_network, then a run without a policy with
/// `--ip-network-mask hmac` (recorded as `network-24-48` too): accepted, so the values of one
/// network must be equal.
#[tokio::test(flavor = "multi_thread")]
async fn attack2_policy_network_and_flag_network_are_the_same_values() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let net = policy_file(NET);
    queue
        .send(&[login("a", "203.0.113.9", "2026-01-10T08:30:00Z")])
        .await;
    run_drain(&queue, &db, &["--policy", &net]);
    queue
        .send(&[login("b", "203.0.113.9", "2026-01-11T08:30:00Z")])
        .await;
    let out = run_binary(binary(&queue, &db).args(["run", "--drain", "--ip-network-mask", "hmac"]));
    eprintln!("exit {:?}: {}", out.status.code(), tail(&out));
    let rows: Vec<Columns> = (db.client().await)
        .query(
            "SELECT user_id, masked_ip, masked_device_id, masked_ip_network FROM user_logins ORDER BY user_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    eprintln!("{rows:#?}");
    let policies: Vec<String> = (db.client().await)
        .query(
            "SELECT fingerprint || ' ' || columns::text FROM privacy_policy",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    eprintln!("{policies:#?}");
    if out.status.success() {
        assert_eq!(
            rows[0].3, rows[1].3,
            "one network, two pseudonyms under one recorded label"
        );
    }
}

/// The plain table's retention runs as the operator role (`run --retain-days`, security.md): it
/// writes no rows, so it records no policy (it may not: SELECT only on privacy_policy).
#[tokio::test(flavor = "multi_thread")]
async fn attack2_operator_retention_consumer() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    queue
        .send(&[login("a", "203.0.113.9", "2026-01-10T08:30:00Z")])
        .await;
    run_drain(&queue, &db, &[]);
    (db.client()
        .await
        .batch_execute("DELETE FROM privacy_policy"))
    .await
    .unwrap();
    let (_op, url) = crate::audit_roles::role_from(
        &db,
        include_str!("../../docs/least-privilege-operator.sql"),
        "login_etl_operator",
        "att2op",
    )
    .await;
    let out = run_binary(binary_for(&queue, &url).args(["run", "--drain", "--retain-days", "30"]));
    eprintln!("exit {:?}: {}", out.status.code(), tail(&out));
    assert!(out.status.success(), "operator retention consumer refused");
    // The operator may not read the reveal audit: `report privacy` leaves that count out.
    let report = run_binary(binary_for(&queue, &url).args(["report", "privacy"]));
    let said = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "{}", tail(&report));
    assert!(!said.contains("  reveal "), "{said}");
}

async fn preview_then_drain(queue: &TestQueue, db: &TestDb, n: usize) {
    let bodies: Vec<String> = (0..n)
        .map(|i| login(&format!("u{i}"), "203.0.113.9", "2026-01-10T08:30:00Z"))
        .collect();
    queue.send(&bodies).await;
    let out = run_binary(binary(queue, db).args([
        "preview",
        "--from-queue",
        "--max-messages",
        &n.to_string(),
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "preview exit {:?}: {} lines; {}",
        out.status.code(),
        stdout.lines().count(),
        tail(&out)
    );
    let users: std::collections::BTreeSet<String> = (stdout.lines())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["row"]["user_id"].as_str().map(str::to_string))
        .collect();
    eprintln!("distinct users previewed: {}", users.len());
    let depth = queue.source.depth().await.unwrap();
    eprintln!(
        "after preview: visible {} in flight {}",
        depth.visible, depth.in_flight
    );
    let drained = run_binary(binary(queue, db).args(["run", "--drain"]));
    eprintln!("drain exit {:?}: {}", drained.status.code(), tail(&drained));
    let rows: i64 = db.scalar("SELECT count(*) FROM user_logins").await;
    assert_eq!(rows, n as i64, "previewed messages must all land at once");
    assert_eq!(users.len(), n, "each message previewed once");
}

#[tokio::test(flavor = "multi_thread")]
async fn attack2_preview_25_standard() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    preview_then_drain(&queue, &db, 25).await;
}

/// `run` refuses FIFO queues, and so does preview (it would show what no run stores).
#[tokio::test(flavor = "multi_thread")]
async fn attack2_preview_25_fifo() {
    let (db, queue) = (TestDb::new().await, TestQueue::fifo().await);
    let out = run_binary(binary(&queue, &db).args(["preview", "--from-queue"]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("is a FIFO queue"),
        "{said}"
    );
}

/// Hostile bodies: no raw value of an `ip` or `device_id` field reaches preview's output (values a
/// login keeps in `user_id`, `device_type` or `locale` are shown, as `run` stores them).
#[tokio::test(flavor = "multi_thread")]
async fn attack2_preview_hostile_bodies_leak_nothing() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let d = |detail: serde_json::Value| {
        json!({"version": "0", "id": "ev-h", "detail-type": "UserLogin", "source": "app.auth",
               "time": "2026-01-10T08:30:00Z", "detail": detail})
        .to_string()
    };
    let bodies = vec![
        d(json!({"user_id": "h1", "device_type": "ios", "ip": "198.51.100.77x", "device_id": "SECRETDEV-1"})),
        d(json!({"user_id": "h2", "device_type": "ios", "ip": 19851, "device_id": "SECRETDEV-2"})),
        d(json!({"user_id": "h3", "device_type": "ios", "ip": "198.51.100.77", "device_id": ["SECRETDEV-3"]})),
        d(json!({"user_id": "h4", "device_type": "ios", "ip": "198.51.100.77", "device_id": "SECRETDEV-4".repeat(40)})),
        d(json!({"user_id": "h5", "device_type": "ios", "ip": "198.51.100.77", "device_id": "SECRETDEV-5", "ip_address": "198.51.100.77", "extra": {"device_id": "SECRETDEV-5b"}})),
        "{\"user_id\": \"h7\", \"ip\": \"198.51.100.77\", \"device_id\": \"SECRETDEV-7\"".to_string(),
        json!({"user_id": "h8", "device_type": "ios", "ip": "198.51.100.77", "device_id": "SECRETDEV-8", "ip": "198.51.100.78"}).to_string(),
        "{\"user_id\":\"h9\",\"device_type\":\"ios\",\"ip\":\"198.51.100.77\",\"ip\":\"198.51.100.79\",\"device_id\":\"SECRETDEV-9\"}".to_string(),
        json!({"user_id": "h10", "device_type": "ios", "ip": " 198.51.100.77 ", "device_id": "SECRETDEV-10"}).to_string(),
    ];
    queue.send(&bodies).await;
    let out =
        run_binary(binary(&queue, &db).args(["preview", "--from-queue", "--max-messages", "20"]));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("{stdout}");
    let mut leaks = vec![];
    for raw in ["198.51.100", "SECRETDEV"] {
        for l in stdout.lines().chain(stderr.lines()) {
            if l.contains(raw) {
                leaks.push(l.to_string());
            }
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
}

/// A table written with sha256 once, then (after `report privacy` showed sha256 masks fall) with
/// hmac until the upgrade: migration 21 records the newest rows' `hmac`, and the production writer
/// (hmac, unchanged flags) starts after the upgrade as before.
#[tokio::test(flavor = "multi_thread")]
async fn attack2_legacy_sample_oldest_strategy_stops_current_writer() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    queue
        .send(&[login("a", "203.0.113.9", "2026-01-10T08:30:00Z")])
        .await;
    run_drain(&queue, &db, &["--mask-strategy", "sha256"]);
    (db.client()
        .await
        .batch_execute("DELETE FROM privacy_policy"))
    .await
    .unwrap();
    queue
        .send(&[login("b", "203.0.113.10", "2026-01-11T08:30:00Z")])
        .await;
    run_drain(&queue, &db, &[]);
    back_to_20(&db).await;
    db.sink().migrate().await.unwrap();
    let legacy: serde_json::Value = db
        .scalar("SELECT columns FROM privacy_policy WHERE fingerprint = 'pol-000000000000'")
        .await;
    eprintln!("legacy record: {legacy}");
    assert_eq!(
        legacy["masked_ip"], "hmac",
        "the newest rows' strategy: {legacy}"
    );
    queue
        .send(&[login("c", "203.0.113.11", "2026-01-12T08:30:00Z")])
        .await;
    let out = run_binary(binary(&queue, &db).args(["run", "--drain"]));
    eprintln!("exit {:?}: {}", out.status.code(), tail(&out));
    assert!(
        out.status.success(),
        "the writer that ran until the upgrade is refused after it"
    );
}

/// A fresh database; network pseudonyms on for a while, then switched off (storing less): a run
/// without a policy file behaves as before policies existed.
#[tokio::test(flavor = "multi_thread")]
async fn attack2_turning_network_pseudonyms_off_is_refused() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    queue
        .send(&[login("a", "203.0.113.9", "2026-01-10T08:30:00Z")])
        .await;
    run_drain(&queue, &db, &["--ip-network-mask", "hmac"]);
    queue
        .send(&[login("b", "203.0.113.10", "2026-01-11T08:30:00Z")])
        .await;
    let out = run_binary(binary(&queue, &db).args(["run", "--drain"]));
    eprintln!("exit {:?}: {}", out.status.code(), tail(&out));
    let chk = run_binary(binary(&queue, &db).args(["check"]));
    eprintln!(
        "check exit {:?}: {}",
        chk.status.code(),
        String::from_utf8_lossy(&chk.stdout)
            .lines()
            .filter(|l| l.contains("masked_ip_network"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    assert!(
        out.status.success(),
        "storing NULL where a pseudonym was cannot mismatch old values"
    );
}

/// Through PgBouncer (transaction pooling): policy recording, the refusal, report privacy and
/// preview, with partitions.
#[tokio::test(flavor = "multi_thread")]
async fn attack2_policies_through_pgbouncer() {
    let bouncer = PgBouncer::start();
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let url = bouncer.url(&db.name);
    run_ok(binary_for(&queue, &url).args(["migrate", "--partition-by-month"]));
    let net = policy_file(NET);
    queue
        .send(&[login("a", "203.0.113.9", "2026-01-10T08:30:00Z")])
        .await;
    run_ok(binary_for(&queue, &url).args([
        "run",
        "--drain",
        "--policy",
        &net,
        "--retain-days",
        "4000",
    ]));
    queue
        .send(&[login("b", "203.0.113.9", "2026-01-11T08:30:00Z")])
        .await;
    let pv =
        run_binary(binary_for(&queue, &url).args(["preview", "--from-queue", "--policy", &net]));
    eprintln!("preview exit {:?}: {}", pv.status.code(), tail(&pv));
    let refused =
        run_binary(binary_for(&queue, &url).args(["run", "--drain", "--mask-strategy", "aes-siv"]));
    eprintln!(
        "aes-siv run exit {:?}: {}",
        refused.status.code(),
        tail(&refused)
    );
    let rp = run_binary(binary_for(&queue, &url).args(["report", "privacy"]));
    eprintln!("report privacy exit {:?}: {}", rp.status.code(), tail(&rp));
    let rd = run_binary(binary_for(&queue, &url).args(["report", "duplicates"]));
    eprintln!(
        "report duplicates exit {:?}: {}",
        rd.status.code(),
        tail(&rd)
    );
    let chk = run_binary(binary_for(&queue, &url).args(["check", "--policy", &net]));
    eprintln!("check exit {:?}", chk.status.code());
    run_ok(binary_for(&queue, &url).args(["run", "--drain", "--policy", &net]));
    assert!(!refused.status.success());
    assert!(pv.status.success() && rp.status.success() && rd.status.success());
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM user_logins").await,
        2
    );
}

/// A queue with a redrive policy of maxReceiveCount 2: preview refuses to use up a receive (two
/// previews would otherwise send the login to the dead-letter queue before `run` saw it).
#[tokio::test(flavor = "multi_thread")]
async fn attack2_previews_push_messages_to_the_dlq() {
    use aws_sdk_sqs::types::QueueAttributeName;
    let (db, queue, dlq) = (
        TestDb::new().await,
        TestQueue::new(30).await,
        TestQueue::new(30).await,
    );
    let client = login_etl::source::sqs::client(&queue.settings()).await;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(dlq.source.queue_url())
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    client
        .set_queue_attributes()
        .queue_url(queue.source.queue_url())
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"2"}}"#),
        )
        .send()
        .await
        .unwrap();
    queue
        .send(&[login("a", "203.0.113.9", "2026-01-10T08:30:00Z")])
        .await;
    for _ in 0..2 {
        let pv = run_binary(binary(&queue, &db).args(["preview", "--from-queue"]));
        let said = String::from_utf8_lossy(&pv.stderr);
        assert!(!pv.status.success(), "{said}");
        assert!(
            said.contains("moves a message to its dead-letter queue after 2 receives"),
            "{said}"
        );
    }
    let out = run_binary(binary(&queue, &db).args(["run", "--drain"]));
    eprintln!("run exit {:?}: {}", out.status.code(), tail(&out));
    let rows: i64 = db.scalar("SELECT count(*) FROM user_logins").await;
    let q: i64 = db.scalar("SELECT count(*) FROM quarantined_messages").await;
    eprintln!("rows {rows} quarantined {q} dlq {}", dlq.remaining().await);
    assert_eq!(rows + q, 1, "the login is neither a row nor quarantined");
}
