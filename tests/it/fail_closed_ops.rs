//! Privacy that fails closed, for operators: erasure that no stored body can block and that
//! leaves nothing of the subject, quarantine retention, key files others can read, and remote
//! databases that offer no TLS.

use std::time::Instant;

use crate::helpers::*;

const SUBJECT: &str = "erase-me-9";

fn login(user: &str, ip: &str, device: &str) -> String {
    serde_json::json!({"user_id": user, "device_type": "ios", "ip": ip, "device_id": device,
                       "locale": null, "app_version": "1.0"})
    .to_string()
}

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn erasure_works_with_nul_bodies_present_and_leaves_nothing_of_the_subject() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let bodies = vec![
        login(SUBJECT, "198.51.100.91", "er-91-a"),
        login(SUBJECT, "198.51.100.92", "er-92-a"),
        login("someone-else", "198.51.100.94", "er-94-a"),
        // The subject's, refused, with NULs in names and values.
        r#"{"user_id":"erase-me-9","ip":"198.51.100.93","device_id":"er-93\u0000a","x\u0000y":"a\u0000b"}"#.into(),
        r#"{"user_id":"a\u0000b","ip":"\u0000"}"#.into(),
        r#"{"user_id":"other","k":"\u0000\u0000","\u0000":null}"#.into(),
    ];
    queue.send(&bodies).await;
    run_drain(&queue, &db, &["--mask-strategy", "aes-siv"]);
    let client = db.client().await;
    // Entries written by an older version, NULs in their bodies, then migration 7 run over them.
    client
        .batch_execute(
            r#"INSERT INTO quarantined_messages (message_id, reason_code, reason, received_at, sent_at,
                   receive_count, body_bytes, body_masked) VALUES
               ('legacy-1', 'invalid_fields', 'r', now(), now(), 1, 1, '{"user_id":"erase-me-9","ip":"k1:abc","note":"x\u0000y"}'),
               ('legacy-2', 'invalid_fields', 'r', now(), now(), 1, 1, '{"user_id":"z\u0000","ip":"1"}');
               DELETE FROM login_etl_schema_migrations WHERE version = 7;"#,
        )
        .await
        .unwrap();
    run_ok(binary(&queue, &db).arg("migrate"));
    let legacy: Vec<(Option<String>, Option<String>)> = client
        .query("SELECT user_id, key_id FROM quarantined_messages WHERE message_id LIKE 'legacy-%' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        legacy,
        vec![
            (Some(SUBJECT.into()), Some("k1".into())),
            (Some("z\\u{0}".into()), None)
        ]
    );
    // A reveal of the subject, and one audited the old way (the id in the selector).
    run_ok(binary(&queue, &db).args(["reveal", "--user-id", SUBJECT, "--reason", "ticket-1"]));
    let masks: Vec<String> = client
        .query(
            "SELECT masked_ip, masked_device_id FROM user_logins WHERE user_id = $1",
            &[&SUBJECT],
        )
        .await
        .unwrap()
        .iter()
        .flat_map(|r| [r.get::<_, String>(0), r.get::<_, String>(1)])
        .collect();
    assert_eq!(masks.len(), 4);
    client
        .execute(
            "INSERT INTO mask_reveals (os_user, actor, reason, selector, masks, row_count)
             VALUES ('old', 'old', 'old', $1, $2, 2)",
            &[&format!("user_id = {SUBJECT:?}"), &masks],
        )
        .await
        .unwrap();
    let subject_row: String = client
        .query_one(
            "SELECT subject FROM mask_reveals WHERE subject IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(subject_row.starts_with("k1:") && !subject_row.contains(SUBJECT));

    let out =
        run_ok(binary(&queue, &db).args(["erase", "--user-id", SUBJECT, "--reason", "gdpr-1"]));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("erased 2 rows from user_logins and 2 quarantine entries, neutralised 2 reveal audit rows"),
        "{said}"
    );
    let dump = db.dump_all_tables().await;
    assert!(!dump.contains(SUBJECT), "the subject's id is still stored");
    for mask in &masks {
        assert!(
            !dump.contains(mask.as_str()),
            "a mask of the subject is still stored"
        );
    }
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM user_logins WHERE user_id = 'someone-else'"
        )
        .await,
        1
    );
    let audit = client
        .query_one(
            "SELECT db_user, detail ->> 'subject' FROM privacy_operations WHERE operation = 'erase'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(audit.get::<_, String>(0), "postgres");
    assert_eq!(audit.get::<_, String>(1), subject_row);
    // Nothing a stored body holds can fail these either.
    for format in ["table", "json", "csv"] {
        run_ok(binary(&queue, &db).args(["report", "keys", "--format", format]));
    }
    run_ok(binary(&queue, &db).args(["retire-key", "--id", "k9"]));
    let refused = run_binary(binary(&queue, &db).args(["retire-key", "--id", "k1"]));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("still masks"),
        "{stderr}"
    );
    assert!(!stderr.contains("SQLSTATE"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn quarantine_and_audit_retention_delete_old_entries_and_say_so() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    queue
        .send(&[r#"{"old":1}"#.to_string(), r#"{"new":1}"#.to_string()])
        .await;
    run_drain(&queue, &db, &[]);
    let client = db.client().await;
    client
        .batch_execute(
            "UPDATE quarantined_messages SET received_at = now() - interval '40 days'
               WHERE body_masked LIKE '%\"old\"%';
             -- An old audit row: the server stamps the time of every insert (migration 15), so
             -- the fixture turns the trigger off for it (only the owner can).
             ALTER TABLE privacy_operations DISABLE TRIGGER privacy_operations_stamped;
             INSERT INTO privacy_operations (at, operation, os_user, actor, reason)
               VALUES (now() - interval '100 days', 'erase', 'x', 'x', 'old');
             ALTER TABLE privacy_operations ENABLE TRIGGER privacy_operations_stamped;",
        )
        .await
        .unwrap();
    let refused = run_binary(binary(&queue, &db).args([
        "run",
        "--drain",
        "--quarantine-retention-days",
        "30",
        "--audit-retention-days",
        "30",
    ]));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("must be longer"));
    run_ok(binary(&queue, &db).args([
        "run",
        "--drain",
        "--quarantine-retention-days",
        "30",
        "--audit-retention-days",
        "90",
    ]));
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM quarantined_messages").await,
        1
    );
    let operations: Vec<(String, i64)> = client
        .query(
            "SELECT operation, quarantined FROM privacy_operations ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        operations.contains(&("quarantine_retention".into(), 1)),
        "{operations:?}"
    );
    assert!(
        operations.contains(&("audit_retention".into(), 1)),
        "{operations:?}"
    );
    assert!(
        !operations.iter().any(|(op, _)| op == "erase"),
        "{operations:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_file_others_can_read_is_refused_at_once_with_the_fix() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let path = std::env::temp_dir().join(format!("login-etl-key-{}", std::process::id()));
    std::fs::write(&path, TEST_KEY_HEX).unwrap();
    let file = path.to_str().unwrap().to_string();
    let with_file = |args: &[&str]| {
        let mut cmd = binary(&queue, &db);
        cmd.env_remove("LOGIN_ETL_MASK_KEY")
            .env("LOGIN_ETL_MASK_KEY_FILE", &file)
            .args(args);
        cmd
    };
    use std::os::unix::fs::PermissionsExt;
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let started = Instant::now();
        let run = run_binary(&mut with_file(&["run", "--drain"]));
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "mode {mode:o}");
        assert!(stderr.contains(&format!("chmod 600 {file}")), "{stderr}");
        assert_stopped_at_once(&stderr, took);
        let check = run_binary(&mut with_file(&["check"]));
        let said = String::from_utf8_lossy(&check.stdout);
        assert!(
            !check.status.success()
                && said.contains("✗ masking keys")
                && said.contains("chmod 600"),
            "{said}"
        );
        eprintln!("mode {mode:o}: run refused in {took:?}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let check = run_binary(&mut with_file(&["check"]));
    assert!(String::from_utf8_lossy(&check.stdout).contains("✓ masking keys load"));
    // Both set: the environment wins, and the log says so.
    let both = run_ok(with_file(&["run", "--drain"]).env("LOGIN_ETL_MASK_KEY", TEST_KEY_HEX));
    assert!(String::from_utf8_lossy(&both.stderr).contains("LOGIN_ETL_MASK_KEY wins"));
    std::fs::remove_file(&path).unwrap();
}

/// A PostgreSQL front that answers "no TLS" to a client's SSLRequest, and otherwise forwards to
/// the local server: a remote database without TLS.
async fn no_tls_front() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut first = [0u8; 8];
                if inbound.read_exact(&mut first).await.is_err() {
                    return;
                }
                let ssl_request = first == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
                if ssl_request && inbound.write_all(b"N").await.is_err() {
                    return;
                }
                let mut server = tokio::net::TcpStream::connect("127.0.0.1:5432")
                    .await
                    .unwrap();
                if !ssl_request {
                    server.write_all(&first).await.unwrap();
                }
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut server).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_database_without_tls_is_refused_unless_plaintext_is_asked_for() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let port = no_tls_front().await;
    // A name off this machine (hostaddr only says where to connect).
    let remote = format!(
        "postgres://postgres@db.example.invalid:{port}/{}?hostaddr=127.0.0.1",
        db.name
    );
    let started = Instant::now();
    let refused = run_binary(binary_for(&queue, &remote).arg("migrate"));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("offers no TLS"), "{stderr}");
    assert_eq!(
        stderr
            .trim()
            .lines()
            .filter(|l| l.starts_with("error"))
            .count(),
        1,
        "{stderr}"
    );
    assert_stopped_at_once(&stderr, started.elapsed());

    let plaintext = format!("{remote}&sslmode=disable");
    run_ok(binary_for(&queue, &plaintext).arg("migrate"));
    let check = run_binary(binary_for(&queue, &plaintext).arg("check"));
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        !check.status.success() && said.contains("✗ PostgreSQL transport"),
        "{said}"
    );
    // On this machine, plaintext is no finding.
    let local = run_binary(binary(&queue, &db).arg("check"));
    assert!(String::from_utf8_lossy(&local.stdout).contains("✓ PostgreSQL transport"));
}

#[tokio::test(flavor = "multi_thread")]
async fn values_from_messages_reach_the_terminal_escaped() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let user = "esc-\u{202e}user\u{1b}]0;pwned\u{7}";
    // A second user on the same device and address: the duplicates report below is not empty.
    queue
        .send(&[
            login(user, "198.51.100.7", "dev-\u{1b}[2J-\u{9b}x"),
            login("esc-\u{1b}other", "198.51.100.7", "dev-\u{1b}[2J-\u{9b}x"),
        ])
        .await;
    run_drain(&queue, &db, &["--mask-strategy", "aes-siv"]);
    let out = run_ok(binary(&queue, &db).args(["reveal", "--user-id", user, "--reason", "t"]));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("dev-\\u{1b}[2J-\\u{9b}x"), "{shown}");
    assert!(
        shown.contains("esc-\\u{202e}user\\u{1b}]0;pwned\\u{7}"),
        "{shown}"
    );
    assert!(
        !shown
            .chars()
            .any(|c| login_etl::safe_text::is_unsafe(c) && c != '\n'),
        "{shown}"
    );
    for format in ["table", "json", "csv"] {
        let out = run_ok(binary(&queue, &db).args(["report", "duplicates", "--format", format]));
        let shown = String::from_utf8_lossy(&out.stdout);
        if format == "csv" {
            let shared: Vec<&str> = shown.lines().filter(|l| l.contains(",2,")).collect();
            assert_eq!(
                shared.len(),
                2,
                "the shared device and address are listed: {shown}"
            );
        }
        assert!(!shown
            .chars()
            .any(|c| login_etl::safe_text::is_unsafe(c) && c != '\n'));
    }
}
