//! `run --policy` against real PostgreSQL: what lands in each column under a policy, pseudonyms
//! that link inside their month only, the period stored with the row, nothing raw anywhere in the
//! table, and a policy that would store a filled column another way refused with one line.

use serde_json::json;

use crate::helpers::*;

/// Network /24 for `ip`, `device_id` linked inside a month, `locale` dropped, `app_version` cut
/// to major.minor, `sent_at` to its day.
const MONTHLY: &str = r#"version = 1
[user_id]
store = "keep"
[ip]
store = "network"
prefix_v4 = 24
prefix_v6 = 48
[device_id]
store = "hmac"
scope = "month"
[device_type]
store = "keep"
[locale]
store = "drop"
[app_version]
store = "generalise"
parts = 2
[create_date]
store = "keep"
[sent_at]
store = "truncate"
to = "day"
"#;

/// A login in an EventBridge event: its `time` is the login's time, so the test picks the month.
fn login(user: &str, ip: &str, device: &str, time: &str) -> String {
    json!({"version": "0", "id": format!("ev-{user}-{time}"), "detail-type": "UserLogin",
        "source": "app.auth", "time": time, "detail": {"user_id": user, "device_type": "ios",
        "ip": ip, "device_id": device, "locale": "NZ", "app_version": "2.3.0"}})
    .to_string()
}

/// A policy file of its own (tests run in parallel), left in the temporary directory.
fn policy_file(text: &str) -> String {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("login-etl-policy")));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_follow_the_policy_and_link_inside_their_month_only() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let monthly = policy_file(MONTHLY);
    queue
        .send(&[
            login("a", "203.0.113.9", "593-47-5928", "2026-01-10T08:30:00Z"),
            login("b", "203.0.113.77", "593-47-5928", "2026-01-20T09:45:00Z"),
            login("c", "198.51.100.4", "593-47-5928", "2026-02-03T23:59:59Z"),
        ])
        .await;
    run_drain(&queue, &db, &["--policy", &monthly]);

    let client = db.client().await;
    let rows = client
        .query(
            "SELECT user_id, masked_ip, masked_ip_network, masked_device_id, locale, app_version, \
             period, to_char(sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
             FROM user_logins ORDER BY user_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let text = |r: usize, c: usize| rows[r].get::<_, Option<String>>(c);
    for r in 0..3 {
        assert_eq!(text(r, 1), None, "ip = network leaves masked_ip empty");
        assert_eq!(text(r, 4), None, "locale = drop");
        assert_eq!(text(r, 5).as_deref(), Some("2.3"));
    }
    assert_eq!(text(0, 2), text(1, 2), "one /24, one network pseudonym");
    assert_ne!(text(0, 2), text(2, 2));
    assert_eq!(
        text(0, 3),
        text(1, 3),
        "the same device inside January links"
    );
    assert_ne!(text(0, 3), text(2, 3), "and not with February");
    let periods: Vec<_> = (0..3).map(|r| text(r, 6)).collect();
    assert_eq!(
        periods,
        [
            Some("2026-01".into()),
            Some("2026-01".into()),
            Some("2026-02".into())
        ]
    );
    assert_eq!(text(2, 7).as_deref(), Some("2026-02-03 00:00:00"));

    let dump = db.dump_all_tables().await;
    for raw in ["203.0.113.9", "198.51.100.4", "593-47-5928"] {
        assert!(!dump.contains(raw), "{raw} is stored: {dump}");
    }
    let recorded: String = client
        .query_one("SELECT fingerprint FROM privacy_policy", &[])
        .await
        .unwrap()
        .get(0);
    assert!(recorded.starts_with("pol-"), "{recorded}");

    let out = run_ok(binary(&queue, &db).args([
        "report", "privacy", "--policy", &monthly, "--format", "json",
    ]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["policy"]["in_force"]["fingerprint"],
        recorded.as_str()
    );
    assert_eq!(
        report["periods"],
        json!([{"period": "2026-02", "rows": 1}, {"period": "2026-01", "rows": 2}])
    );
    // Retention shows as the audit recorded its last run: 300 days back drops the January rows.
    run_drain(&queue, &db, &["--policy", &monthly, "--retain-days", "300"]);
    let out = run_ok(binary(&queue, &db).args([
        "report", "privacy", "--policy", &monthly, "--format", "json",
    ]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let retention = &report["retention"][0];
    assert_eq!(retention["operation"], "retention", "{report}");
    assert!(retention["deleted_before"].is_string(), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_that_stores_a_filled_column_otherwise_is_refused_in_one_line() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let monthly = policy_file(MONTHLY);
    let all_time =
        policy_file(&MONTHLY.replace("store = \"hmac\"\nscope = \"month\"", "store = \"hmac\""));
    // Only the unfilled `locale` changes: allowed.
    let with_locale =
        policy_file(&MONTHLY.replace("[locale]\nstore = \"drop\"", "[locale]\nstore = \"keep\""));
    queue
        .send(&[login(
            "a",
            "203.0.113.9",
            "593-47-5928",
            "2026-01-10T08:30:00Z",
        )])
        .await;
    run_drain(&queue, &db, &["--policy", &monthly]);

    for refused in [vec!["--policy", all_time.as_str()], vec![]] {
        let out = run_binary(binary(&queue, &db).args(["run", "--drain"]).args(&refused));
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = (stderr.lines())
            .find(|l| l.contains("user_logins."))
            .unwrap_or_else(|| panic!("no refusal line: {stderr}"));
        assert!(
            line.contains("user_logins.masked_device_id is stored as `hmac/month`"),
            "{line}"
        );
        assert!(line.contains("Changing a policy"), "{line}");
    }
    run_drain(&queue, &db, &["--policy", &with_locale]);
    assert_eq!(db.counts().await.rows, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sealed_device_and_a_pseudonymous_user_land_and_reveal_by_the_id() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let both = policy_file(
        &MONTHLY
            .replace(
                "store = \"hmac\"\nscope = \"month\"",
                "store = \"aes-siv\"\nscope = \"month\"",
            )
            .replace(
                "[user_id]\nstore = \"keep\"",
                "[user_id]\nstore = \"pseudonym\"",
            ),
    );
    queue
        .send(&[login(
            "a",
            "203.0.113.9",
            "593-47-5928",
            "2026-01-10T08:30:00Z",
        )])
        .await;
    run_drain(&queue, &db, &["--policy", &both]);
    let row = (db.client().await)
        .query_one(
            "SELECT user_id, masked_device_id, period FROM user_logins",
            &[],
        )
        .await
        .unwrap();
    let (user, device, period): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_ne!(user, "a");
    assert!(device.starts_with("@2026-01:"), "{device}");
    assert_eq!(period, "2026-01");
    let out = run_ok(binary(&queue, &db).args(["reveal", "--user-id", "a", "--reason", "t-1"]));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("593-47-5928"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_reports_count_within_a_period_and_say_so() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let monthly = policy_file(MONTHLY);
    // One device, two users in January and two in February: two shared devices, one per month.
    queue
        .send(&[
            login("a", "203.0.113.9", "593-47-5928", "2026-01-10T08:30:00Z"),
            login("b", "203.0.113.10", "593-47-5928", "2026-01-11T08:30:00Z"),
            login("c", "203.0.113.11", "593-47-5928", "2026-02-10T08:30:00Z"),
            login("d", "203.0.113.12", "593-47-5928", "2026-02-11T08:30:00Z"),
        ])
        .await;
    run_drain(&queue, &db, &["--policy", &monthly]);
    let out = run_ok(binary(&queue, &db).args(["report", "duplicates", "--format", "json"]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let periods: Vec<&str> = (report["shared_devices"].as_array().unwrap().iter())
        .map(|d| d["period"].as_str().unwrap())
        .collect();
    assert_eq!(periods.len(), 2, "{report}");
    assert!(
        periods.contains(&"2026-01") && periods.contains(&"2026-02"),
        "{report}"
    );
    assert_eq!(report["linked_within"]["masked_device_id"], "month");
    let table = run_ok(binary(&queue, &db).args(["report", "duplicates"]));
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("masked_device_id pseudonyms link only within one month"),
        "{table}"
    );
    assert!(table.contains("  in 2026-02"), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_from_the_queue_shows_rows_and_hands_every_message_back() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let monthly = policy_file(MONTHLY);
    let plain = |user: &str, device: &str| {
        json!({"user_id": user, "device_type": "ios", "ip": "203.0.113.9",
            "device_id": device, "app_version": "2.3.0"})
    };
    queue
        .send(&[
            login("a", "203.0.113.9", "593-47-5928", "2026-01-10T08:30:00Z"),
            json!([plain("b", "593-47-0001"), plain("c", "593-47-0002")]).to_string(),
            json!({"user_id": "d", "device_type": "ios", "ip": "203.0.113.9"}).to_string(),
        ])
        .await;
    let out = run_ok(binary(&queue, &db).args(["preview", "--from-queue", "--policy", &monthly]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = (stdout.lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    let rows: Vec<_> = lines.iter().filter(|l| l.get("row").is_some()).collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    for row in &rows {
        assert_eq!(row["row"]["masked_ip"], serde_json::Value::Null, "{row}");
        assert_eq!(row["row"]["app_version"], "2.3", "{row}");
    }
    let refused: Vec<_> = lines
        .iter()
        .filter(|l| l.get("quarantined").is_some())
        .collect();
    assert!(refused[0]["quarantined"]
        .as_str()
        .unwrap()
        .contains("`device_id` is missing"));
    for raw in ["203.0.113.9", "593-47-"] {
        assert!(!stdout.contains(raw), "{raw} in the preview: {stdout}");
    }
    // Nothing was written or deleted: a run afterwards finds every message.
    assert_eq!(
        db.scalar::<Option<String>>("SELECT to_regclass('user_logins')::text")
            .await,
        None
    );
    run_drain(&queue, &db, &["--policy", &monthly]);
    let counts = db.counts().await;
    assert_eq!((counts.rows, counts.quarantined()), (3, 1));
}

/// A database upgraded to migration 21 with rows and roles in place: the rows' treatment is
/// recorded from one of them (so a least-privilege writer, which cannot read rows, is still
/// refused a policy that stores them otherwise), and the writer may record policies.
#[tokio::test(flavor = "multi_thread")]
async fn an_upgraded_database_records_its_rows_treatment_and_grants_its_writers() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    queue
        .send(&[login(
            "a",
            "203.0.113.9",
            "593-47-5928",
            "2026-01-10T08:30:00Z",
        )])
        .await;
    run_drain(&queue, &db, &["--mask-strategy", "aes-siv"]);
    let client = db.client().await;
    (client.batch_execute(
        "DROP TABLE privacy_policy; ALTER TABLE user_logins DROP COLUMN period; \
         DELETE FROM login_etl_schema_migrations WHERE version = 21",
    ))
    .await
    .unwrap();
    let before_21 = |file: &str| -> String {
        (file.split_inclusive(';'))
            .filter(|statement| !statement.contains("privacy_policy"))
            .collect()
    };
    let (writer, url) = crate::audit_roles::role_from(
        &db,
        &before_21(include_str!("../../docs/least-privilege.sql")),
        "login_etl_writer",
        "old_w21",
    )
    .await;
    db.sink().migrate().await.unwrap();
    let legacy: serde_json::Value = db
        .scalar("SELECT columns FROM privacy_policy WHERE fingerprint = 'pol-000000000000'")
        .await;
    assert_eq!(legacy["masked_device_id"], "aes-siv", "{legacy}");
    assert_eq!(legacy["masked_ip_network"], "empty", "{legacy}");
    let granted: bool = client
        .query_one(
            "SELECT has_table_privilege($1, 'privacy_policy', 'SELECT, INSERT') \
             AND has_column_privilege($1, 'privacy_policy', 'last_used', 'UPDATE')",
            &[&writer],
        )
        .await
        .unwrap()
        .get(0);
    assert!(granted, "the writer role may record policies");
    let monthly = policy_file(MONTHLY);
    let out = run_binary(binary_for(&queue, &url).args(["run", "--drain", "--policy", &monthly]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("user_logins.masked_ip is stored as `aes-siv`")
            && stderr.contains("pol-000000000000"),
        "{stderr}"
    );
    let same =
        run_binary(binary_for(&queue, &url).args(["run", "--drain", "--mask-strategy", "aes-siv"]));
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
}
