//! The operator commands against the real stack: `status --format json`, `quarantine list/show`,
//! and `check` saying ✓ on a good setup and ✗ (with the fix) on a bad one.

use crate::helpers::*;

fn stdout_of(cmd: &mut std::process::Command) -> (bool, String) {
    let out = run_binary(cmd);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn status_json_and_quarantine_commands_match_the_database() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let bodies = synthetic(500, 61);
    queue.send(&bodies).await;
    assert!(run_binary(binary(&queue, &db).args(["run", "--drain"]))
        .status
        .success());
    let counts = db.counts().await;

    let (ok, json) = stdout_of(binary(&queue, &db).args(["status", "--format", "json"]));
    assert!(ok, "{json}");
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    let database = &status["database"];
    assert_eq!(database["rows"], counts.rows);
    assert_eq!(database["processed"], counts.processed);
    for (code, n) in &counts.quarantined_by_code {
        assert_eq!(database["quarantined_by_code"][code], *n, "{code}");
    }
    assert_eq!(
        database["key_ids"]["k1"], counts.rows,
        "every row under key k1"
    );
    assert_eq!(database["schema_version"], 22);
    assert!(database["last_commit"].is_string());
    assert_eq!(status["queue"]["depth"]["visible"], 0);

    let (ok, list) = stdout_of(binary(&queue, &db).args([
        "quarantine",
        "list",
        "--format",
        "json",
        "--reason",
        "invalid_json",
    ]));
    assert!(ok);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    let invalid_json = counts
        .quarantined_by_code
        .iter()
        .find(|(code, _)| code == "invalid_json")
        .map_or(0, |(_, n)| *n);
    assert_eq!(entries.len() as i64, invalid_json);
    assert!(entries.iter().all(|e| e["reason_code"] == "invalid_json"));

    let (ok, all) =
        stdout_of(binary(&queue, &db).args(["quarantine", "list", "--since", "2000-01-01"]));
    assert!(
        ok && all.starts_with(&format!("{} quarantined messages", counts.quarantined())),
        "{all}"
    );
    let (ok, none) =
        stdout_of(binary(&queue, &db).args(["quarantine", "list", "--since", "2999-01-01"]));
    assert!(ok && none.starts_with("0 quarantined messages"), "{none}");

    let id = db
        .client()
        .await
        .query_one(
            "SELECT message_id FROM quarantined_messages WHERE body_masked IS NOT NULL LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get::<_, String>(0);
    let (ok, shown) = stdout_of(binary(&queue, &db).args(["quarantine", "show", &id]));
    assert!(
        ok && shown.contains(&id) && shown.contains("body_masked:"),
        "{shown}"
    );
    let out = run_binary(binary(&queue, &db).args(["quarantine", "show", "no-such-id"]));
    assert!(!out.status.success());
    let listed = format!("{json}{list}{all}{shown}");
    assert_no_raw_pii(&listed, &raw_pii(&bodies), "status and quarantine output");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_passes_on_a_good_setup() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    db.sink().migrate().await.unwrap();
    let (ok, report) = stdout_of(binary(&queue, &db).arg("check"));
    assert!(ok, "{report}");
    assert!(!report.contains('✗'), "{report}");
    assert!(report.contains("✓ masking keys load"), "{report}");
    assert!(report.contains("✓ visibility timeout 30s"), "{report}");
    assert!(report.contains("schema current"), "{report}");
    assert!(
        report.contains("✓ the database role has every privilege"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_names_a_short_visibility_timeout_and_a_missing_grant() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    db.sink().migrate().await.unwrap();
    let (role, url) = least_privilege_role(&db, "login_etl_check").await;
    let client = db.client().await;
    client
        .batch_execute(&format!("REVOKE ALL ON poison_attempts FROM {role}"))
        .await
        .unwrap();

    let (ok, report) = stdout_of(binary_for(&queue, &url).arg("check"));
    assert!(!ok, "{report}");
    assert!(
        report.contains(
            "✗ visibility timeout 2s is shorter than the batch window plus a commit (11s)"
        ) && report.contains("VisibilityTimeout to at least 11"),
        "{report}"
    );
    assert!(
        report.contains("✗ the database role lacks INSERT, UPDATE, DELETE on poison_attempts")
            && report.contains("least-privilege.sql"),
        "{report}"
    );
    client
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
}
