//! Privacy that fails closed, end to end on the real stack: generated messages hide known IPv4,
//! IPv6 addresses and device ids wherever a producer might put them, and no raw value appears
//! in a `pg_dump` of the database, the trace-level logs, `quarantine list/show` (every format),
//! `status`, `report` or `/metrics`. Then the fixed corpus of the privacy issue, erasure with
//! NUL-bearing bodies present, key files others can read, and remote databases without TLS.

use std::process::Command;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::helpers::*;

/// Names a producer might give PII, in any case.
const PII_NAMES: &[&str] = &[
    "ip",
    "ipAddress",
    "ip_address",
    "clientIp",
    "source_ip",
    "remote_addr",
    "device_id",
    "deviceId",
    "device-id",
    "udid",
    "hardware_id",
];
/// Names that say nothing about their value.
const PLAIN_NAMES: &[&str] = &["note", "x", "payload", "value", "message"];

fn any_case(rng: &mut StdRng, name: &str) -> String {
    match rng.gen_range(0..3) {
        0 => name.to_uppercase(),
        1 => name.to_string(),
        _ => name
            .chars()
            .map(|c| if rng.gen() { c.to_ascii_uppercase() } else { c })
            .collect(),
    }
}

/// The secret, put somewhere: a (key, value) pair to add to an object.
fn place(rng: &mut StdRng, secret: &str) -> Map<String, Value> {
    let mut m = Map::new();
    match rng.gen_range(0..7) {
        0 => {
            let name = *PII_NAMES.choose(rng).unwrap();
            let name = any_case(rng, name);
            m.insert(name, secret.into());
        }
        1 => {
            m.insert(PLAIN_NAMES.choose(rng).unwrap().to_string(), secret.into());
        }
        2 => {
            m.insert(
                "note".into(),
                format!("seen {secret} at\u{0} login \u{1b}[31m").into(),
            );
        }
        3 => {
            m.insert(secret.into(), true.into());
        }
        4 => {
            // In a field that is kept when harmless; the message labels it elsewhere.
            let kept = ["device_type", "locale", "app_version", "create_date"];
            m.insert(kept.choose(rng).unwrap().to_string(), secret.into());
            m.insert("Device_Id".into(), secret.into());
        }
        5 => {
            m.insert("list".into(), json!(["x", secret, {"k": secret}]));
        }
        _ => {
            let inner = json!({"ip": secret, "device_id": secret}).to_string();
            m.insert("Message".into(), inner.into());
        }
    }
    m
}

/// `count` bodies hiding PII, and every raw value hidden in them.
fn generate(count: usize, seed: u64) -> (Vec<String>, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut bodies, mut raw) = (Vec::new(), Vec::new());
    for i in 0..count {
        let ip4 = std::net::Ipv4Addr::from(rng.gen::<[u8; 4]>()).to_string();
        let segments: [u16; 8] = std::array::from_fn(|s| if s == 3 { 0 } else { rng.gen() });
        let ip6 = std::net::Ipv6Addr::from(segments).to_string();
        let device = format!(
            "dv{i:03}-{}",
            (0..5)
                .map(|_| *b"GHJKMNPQRSTVWXYZ".choose(&mut rng).unwrap() as char)
                .collect::<String>()
        );
        let mut top = Map::new();
        let user = if rng.gen_bool(0.2) {
            format!("fz\u{0}{i}")
        } else {
            format!("fz-{i}")
        };
        top.insert("user_id".into(), user.into());
        top.insert("esc".into(), "tab\tnl\n\u{1b}]0;x\u{7}\u{202e}rtl".into());
        for secret in [&ip4, &ip6, &device] {
            let mut value = Value::Object(place(&mut rng, secret));
            for _ in 0..rng.gen_range(0..4) {
                value = json!({ "ctx": value });
            }
            top.insert(format!("f{}", top.len()), value);
        }
        let login = Value::Object(top).to_string();
        let body = match rng.gen_range(0..10) {
            0 | 1 => json!({"Type": "Notification", "TopicArn": "arn:aws:sns:eu-west-1:1:t",
                            "MessageId": format!("sns-{i}"), "Message": login})
            .to_string(),
            2 => json!({"version": "0", "id": format!("eb-{i}"), "detail-type": "login",
                        "source": "app", "time": "2026-12-01T00:00:00Z",
                        "detail": serde_json::from_str::<Value>(&login).unwrap()})
            .to_string(),
            3 => format!("login {ip4} {ip6} {device} not json"),
            4 => login[..login.len() - 3].to_string(),
            _ => login,
        };
        bodies.push(body);
        raw.extend([ip4, ip6, device]);
    }
    (bodies, raw)
}

/// Fail if any raw value appears in `haystack`, in any case.
fn assert_none_in(haystack: &str, raw: &[String], what: &str) {
    assert!(!raw.is_empty(), "nothing to look for in {what}");
    let lower = haystack.to_lowercase();
    let leaked: Vec<&String> = raw
        .iter()
        .filter(|r| lower.contains(&r.to_lowercase()))
        .collect();
    assert!(
        leaked.is_empty(),
        "{} raw values leaked into {what}: {leaked:?}",
        leaked.len()
    );
}

/// `pg_dump --data-only` of the test database.
fn pg_dump(db: &TestDb) -> String {
    let out = Command::new("pg_dump")
        .args(["--data-only", "--dbname", &db.url])
        .output()
        .expect("pg_dump runs (PostgreSQL's client tools are installed by scripts/stack-up.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything an operator can read: every format of quarantine list/show, status and reports.
async fn operator_outputs(queue: &TestQueue, db: &TestDb) -> String {
    let mut all = String::new();
    let mut read = |args: &[&str]| {
        let out = run_ok(binary(queue, db).args(args));
        all += &String::from_utf8_lossy(&out.stdout);
        all += &String::from_utf8_lossy(&out.stderr);
    };
    for format in ["table", "json", "csv"] {
        read(&[
            "quarantine",
            "list",
            "--limit",
            "100000",
            "--format",
            format,
        ]);
        read(&["report", "duplicates", "--format", format]);
        read(&["report", "keys", "--format", format]);
    }
    read(&["status"]);
    read(&["status", "--format", "json"]);
    let ids: Vec<String> = db
        .client()
        .await
        .query("SELECT message_id FROM quarantined_messages", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in &ids {
        read(&["quarantine", "show", id]);
    }
    all
}

/// No raw value in `pg_dump`, the logs, `/metrics` or anything an operator can print.
async fn assert_nothing_leaked(
    queue: &TestQueue,
    db: &TestDb,
    logs: &str,
    metrics: &str,
    raw: &[String],
) {
    assert_none_in(&pg_dump(db), raw, "pg_dump");
    assert_none_in(logs, raw, "the trace logs");
    assert_none_in(metrics, raw, "/metrics");
    assert_none_in(&operator_outputs(queue, db).await, raw, "operator outputs");
}

/// Drain `bodies` through a real `run` with metrics on; the logs and the last `/metrics`.
async fn drain_with_metrics(queue: &TestQueue, db: &TestDb, bodies: &[String]) -> (String, String) {
    db.sink().migrate().await.unwrap();
    queue.send(bodies).await;
    let mut run = Spawned::new(
        binary(queue, db)
            .env("LOGIN_ETL_METRICS_ADDR", ANY_PORT)
            .args(["run", "--batch-size", "40"]),
    );
    let port = run.metrics_port().await;
    let sent = bodies.len() as i64;
    wait_until("the queue drained", Duration::from_secs(90), || async {
        db.counts().await.processed == sent
    })
    .await;
    let (_, metrics) = http_get(port, "/metrics").await.expect("metrics served");
    run.sigterm();
    assert!(
        run.wait(Duration::from_secs(30)).await.success(),
        "{}",
        run.log()
    );
    (run.log(), metrics)
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_pii_reaches_no_table_log_output_or_metric() {
    let (bodies, raw) = generate(150, 17);
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let (logs, metrics) = drain_with_metrics(&queue, &db, &bodies).await;
    let counts = db.counts().await;
    let quarantined = counts.quarantined();
    assert!(
        quarantined >= 100,
        "most generated bodies are not logins ({quarantined})"
    );
    assert_nothing_leaked(&queue, &db, &logs, &metrics, &raw).await;
    // Every stored body can be read as jsonb, and every user id is NUL-free.
    let client = db.client().await;
    let castable: i64 = client
        .query_one(
            "SELECT count(body_masked::jsonb) FROM quarantined_messages WHERE scrub_version = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(castable, quarantined);
}

/// The bodies that leaked before this rule, kept as a regression corpus.
const CORPUS: &[(&str, &[&str])] = &[
    (
        r#"{"user_id":"u1","IP":"203.0.113.201","device_id":"cq-201-x"}"#,
        &["203.0.113.201", "cq-201-x"],
    ),
    (
        r#"{"ipAddress":"203.0.113.202","deviceId":"cq-202-x"}"#,
        &["203.0.113.202", "cq-202-x"],
    ),
    (r#"{"user_id":"u3","Device_ID":"cq-203-x"}"#, &["cq-203-x"]),
    (
        r#"{"Type":"Notification","TopicArn":"arn:aws:sns:eu-west-1:1:t","MessageId":"m4","Message":"{\"user_id\":\"u4\",\"ip\":\"203.0.113.204\",\"device_id\":\"cq-204-x\"}"}"#,
        &["203.0.113.204", "cq-204-x"],
    ),
    (
        r#"{"user_id":"u7","note":"login from 203.0.113.207 on dev-207"}"#,
        &["203.0.113.207", "dev-207"],
    ),
    (
        r#"{"user_id":"u\u00008","ip":"203.0.113.208","device_id":"cq\u0000-208-x"}"#,
        &["203.0.113.208", "-208-x"],
    ),
    (
        r#"{"user_id":"2001:db8:85a3::8a2e:370:7334"}"#,
        &["2001:db8:85a3::8a2e:370:7334"],
    ),
    (
        r#"{"user_id":"u9","seen":{"203.0.113.209":true}}"#,
        &["203.0.113.209"],
    ),
    (
        r#"login from 203.0.113.210 on cq-210-x"#,
        &["203.0.113.210", "cq-210-x"],
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn the_corpus_of_the_privacy_issue_stays_masked() {
    let bodies: Vec<String> = CORPUS.iter().map(|(b, _)| b.to_string()).collect();
    let raw: Vec<String> = CORPUS
        .iter()
        .flat_map(|(_, r)| r.iter().map(|s| s.to_string()))
        .collect();
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let (logs, metrics) = drain_with_metrics(&queue, &db, &bodies).await;
    assert_eq!(db.counts().await.processed, CORPUS.len() as i64);
    assert_nothing_leaked(&queue, &db, &logs, &metrics, &raw).await;
    // Diagnosis stays useful: the SNS entry shows its kind, the inner login's names and user.
    let sns: String = db
        .client()
        .await
        .query_one(
            "SELECT body_masked FROM quarantined_messages WHERE user_id = 'u4'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let sns: Value = serde_json::from_str(&sns).unwrap();
    assert_eq!(sns["Type"], "Notification");
    assert!(sns["Message"]["#json"]["ip"]
        .as_str()
        .unwrap()
        .starts_with("k1:"));
}
