//! Start-up errors a user must be able to act on, and secrets kept out of `--help`.

use std::time::Duration;

use crate::helpers::*;

#[test]
fn help_explains_every_subcommand_and_shows_no_secrets() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_login-etl"))
            .args(args)
            .env("LOGIN_ETL_MASK_KEY", TEST_KEY_HEX)
            .env("LOGIN_ETL_DATABASE_URL", "postgres://u:hunter2@db/x")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Every subcommand listed by the top-level help has help of its own, with a description,
    // and none shows a secret from the environment.
    let top = help(&["--help"]);
    let commands: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        // A command's line starts with two spaces; a wrapped description with more.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 13, "{commands:?}");
    for command in &commands {
        let text = help(&[command, "--help"]);
        assert!(text.contains("Usage: login-etl"), "{command}");
        assert!(
            text.lines().next().is_some_and(|l| l.len() > 10),
            "{command} has no description"
        );
        assert!(
            !text.contains("hunter2") && !text.contains(TEST_KEY_HEX),
            "{command} shows a secret"
        );
    }
    for nested in [
        ["quarantine", "list"],
        ["quarantine", "show"],
        ["report", "duplicates"],
        ["report", "keys"],
    ] {
        let text = help(&[nested[0], nested[1], "--help"]);
        assert!(!text.contains("hunter2"), "{nested:?}");
    }
    let run = help(&["run", "--help"]);
    for flag in [
        "--sqs-endpoint",
        "--queue-url",
        "--queue-name",
        "--database-url",
        "--database-ca-file",
        "--drain",
        "--batch-size",
        "--quarantine-retention-days",
        "LOGIN_ETL_MASK_KEY",
    ] {
        assert!(run.contains(flag), "{flag} missing from help");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn run_refuses_to_start_without_a_mask_key() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let out = run_binary(
        binary(&queue, &db)
            .env_remove("LOGIN_ETL_MASK_KEY")
            .args(["run", "--drain"]),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("LOGIN_ETL_MASK_KEY") && stderr.contains("--mask-key-file"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_queue_is_a_clear_immediate_error() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let started = std::time::Instant::now();
    let out = run_binary(
        binary(&queue, &db)
            .env("LOGIN_ETL_QUEUE_NAME", "no-such-queue")
            .args(["run", "--drain"]),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SQS queue `no-such-queue` does not exist"),
        "{stderr}"
    );
    assert_stopped_at_once(&stderr, started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_key_is_rejected_without_echoing_it() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let out = run_binary(
        binary(&queue, &db)
            .env("LOGIN_ETL_MASK_KEY", "s3cret-not-hex")
            .args(["run", "--drain"]),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not hexadecimal"), "{stderr}");
    assert!(!stderr.contains("s3cret"));
}

/// The grants documented in docs/security.md are enough for `run`, and `migrate` needs more; the
/// role cannot create anything in `public`.
#[tokio::test(flavor = "multi_thread")]
async fn run_works_under_the_documented_least_privilege_role() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    db.sink().migrate().await.unwrap(); // as the owner, like a deploy step
    let (role, url) = least_privilege_role(&db, "login_etl_run").await;
    let client = db.client().await;
    queue.send(&sample_bodies()).await;

    let out = run_binary(binary_for(&queue, &url).args(["run", "--drain"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_landed(&db, &queue, 99, 1).await;
    // The background ledger pruning works under these grants too: a ledger id older than the
    // retention is pruned by a consumer running as the role.
    client
        .batch_execute(
            "INSERT INTO processed_messages (message_id, outcome, processed_at) \
             VALUES ('old-id', 'row', now() - interval '400 days')",
        )
        .await
        .unwrap();
    let mut consumer = Spawned::new(binary_for(&queue, &url).arg("run"));
    wait_until(
        "the old ledger id pruned",
        Duration::from_secs(60),
        || async {
            let left: i64 = db
                .scalar("SELECT count(*) FROM processed_messages WHERE message_id = 'old-id'")
                .await;
            left == 0
        },
    )
    .await;
    consumer.sigterm();
    let status = consumer.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", consumer.log());
    assert!(
        !consumer.log().contains("pruning failed"),
        "{}",
        consumer.log()
    );

    // The role can't change the schema: a pending migration is refused at once.
    client
        .batch_execute("DELETE FROM login_etl_schema_migrations WHERE version = 2")
        .await
        .unwrap();
    let out = run_binary(binary_for(&queue, &url).arg("migrate"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"));
    // Nor plant a table in `public` (the file revokes CREATE there from PUBLIC, which PostgreSQL
    // 14 and older grant). One implicit transaction: the failure undoes the SET ROLE too.
    let planted = client
        .batch_execute(&format!(
            "SET ROLE {role}; CREATE TABLE public.planted (x int)"
        ))
        .await;
    client.batch_execute("RESET ROLE").await.unwrap();
    let refused = planted.expect_err("the writer role created a table in public");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{refused}"
    );
    client
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
}

#[test]
fn version_names_the_release_and_the_commit_it_was_built_from() {
    for args in [&["--version"][..], &["run", "--version"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_login-etl"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let expected = format!("(commit {})", login_etl::GIT_COMMIT);
        assert!(
            text.contains(env!("CARGO_PKG_VERSION")) && text.contains(&expected),
            "{text}"
        );
    }
    let commit = login_etl::GIT_COMMIT;
    let from_git = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match from_git {
        // Built from this checkout: the commit is HEAD's (unless the build was given another).
        Some(head) if std::env::var_os("LOGIN_ETL_GIT_COMMIT").is_none() => {
            assert_eq!(commit, head)
        }
        _ => assert!(commit == "unknown" || commit.bytes().all(|b| b.is_ascii_hexdigit())),
    }
}

/// `policy check`: each example policy is valid (exit 0, its fingerprint and every field named);
/// a file with typos is refused (exit 1) with every problem as `FILE:LINE: …` and its fix, and
/// nothing on stdout.
#[test]
fn policy_check_accepts_the_examples_and_refuses_typos_with_line_and_fix() {
    let check = |path: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_login-etl"))
            .args(["policy", "check"])
            .arg(path)
            .output()
            .unwrap()
    };
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies");
    for name in ["seed.toml", "monthly-links.toml", "minimal.toml"] {
        let out = check(&examples.join(name));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("valid, fingerprint pol-"), "{stdout}");
        for field in ["user_id", "ip", "device_id", "app_version", "sent_at"] {
            assert!(stdout.contains(&format!("\n{field} → ")), "{name}: {field}");
        }
    }
    let seed = std::fs::read_to_string(examples.join("seed.toml")).unwrap();
    let typo = seed.replace("[device_id]", "[devise_id]").replace(
        "store = \"hmac\"          # keyed pseudonym: equal",
        "store = \"hmca\"  # equal",
    );
    let path = std::env::temp_dir()
        .join(unique("policy-typo"))
        .with_extension("toml");
    std::fs::write(&path, typo).unwrap();
    let out = check(&path);
    std::fs::remove_file(&path).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown = path.display().to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{shown}:9: `hmca`"))
            && lines[0].contains("did you mean `hmac`?"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!("{shown}:11: unknown field `devise_id`"))
            && lines[1].contains("did you mean `device_id`?"),
        "{stderr}"
    );
    assert!(
        lines.iter().any(|l| l.contains("no entry for `device_id`")),
        "{stderr}"
    );
    assert!(
        lines.last().unwrap().contains("refused: 3 problems"),
        "{stderr}"
    );
}

/// `preview`: each login of a file as the row the policy makes (or its quarantine reason), on
/// stdout; no raw address or device id anywhere in the output, and nothing needs a database.
#[test]
fn preview_shows_rows_under_a_policy_without_raw_values() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies");
    let logins: Vec<String> = (0..20)
        .map(|i| {
            serde_json::json!({"user_id": format!("pv-{i}"), "device_type": "ios",
                "ip": format!("198.51.100.{}", i + 1), "device_id": format!("pv-dev-{i:04}"),
                "locale": "NZ", "app_version": "4.1.7"})
            .to_string()
        })
        .chain(["{\"user_id\": \"pv-x\"}".to_string()])
        .collect();
    let path = std::env::temp_dir()
        .join(unique("preview"))
        .with_extension("jsonl");
    std::fs::write(&path, logins.join("\n")).unwrap();
    for name in ["seed.toml", "monthly-links.toml", "minimal.toml"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_login-etl"))
            .arg("preview")
            .arg(&path)
            .arg("--policy")
            .arg(examples.join(name))
            .args(["--sent-at", "2026-11-30T23:59:59Z"])
            .env("LOGIN_ETL_MASK_KEY", TEST_KEY_HEX)
            .env(
                "LOGIN_ETL_DATABASE_URL",
                "postgres://nobody@127.0.0.1:1/none",
            )
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{name}: {stderr}");
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 21, "{name}");
        assert!(lines[20]["quarantined"]
            .as_str()
            .unwrap()
            .contains("`ip` is missing"));
        assert!(
            stderr.contains("20 rows, 1 quarantined; nothing written"),
            "{stderr}"
        );
        for i in 0..20 {
            assert!(
                !stdout.contains(&format!("198.51.100.{}\"", i + 1)),
                "{name}: a raw address"
            );
            assert!(
                !stdout.contains(&format!("pv-dev-{i:04}")),
                "{name}: a raw device id"
            );
        }
        let row = &lines[0]["row"];
        match name {
            "minimal.toml" => {
                assert_eq!(row["app_version"], "4.1");
                assert_eq!(row["sent_at"], "2026-11-30T00:00:00+00:00");
                assert!(row["user_id"].as_str().unwrap().starts_with("k1:"));
                assert!(row.get("masked_ip_network").is_some() && row.get("masked_ip").is_none());
            }
            "monthly-links.toml" => assert_eq!(lines[0]["period"], "2026-11"),
            _ => assert_eq!(row["user_id"], "pv-0"),
        }
    }
    std::fs::remove_file(&path).unwrap();
}

/// `preview` of lines that are not UTF-8 or longer than 256 KiB: each quarantined alone with
/// the reason, the lines after them previewed as usual.
#[test]
fn preview_quarantines_bad_lines_alone() {
    let login = r#"{"user_id":"pv","device_type":"ios","ip":"198.51.100.9","device_id":"pv-dev"}"#;
    let mut bytes = b"\xff\xfe{}\n".to_vec();
    bytes.extend(std::iter::repeat(b'x').take(300 * 1024));
    bytes.extend(format!("\n{login}\r\n{login}").bytes());
    let path = std::env::temp_dir()
        .join(unique("preview-bad"))
        .with_extension("jsonl");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_login-etl"))
        .arg("preview")
        .arg(&path)
        .env("LOGIN_ETL_MASK_KEY", TEST_KEY_HEX)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert_eq!(lines[0]["quarantined"], "the line is not UTF-8");
    assert_eq!(lines[1]["quarantined"], "the line is over 256 KiB");
    assert!(
        lines[2]["row"].is_object() && lines[3]["row"].is_object(),
        "{stdout}"
    );
    assert!(!stdout.contains("198.51.100.9") && !stdout.contains("pv-dev"));
}
