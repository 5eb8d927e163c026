//! Temporary credentials, as SSO, IRSA and task roles hand them out (here a `credential_process`
//! profile): the hot SQS calls resolve them once and reuse them, renew them before they expire,
//! and a drain with them is exact either way.

use std::path::Path;

use crate::helpers::*;

/// A profile whose `credential_process` counts its calls in `calls` and hands out credentials
/// with a session token that expire `expires_in` seconds from each call.
fn profile(dir: &Path, expires_in: u32) -> std::path::PathBuf {
    let script = dir.join("credentials.sh");
    let calls = dir.join("calls");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho call >> '{calls}'\nexpiry=$(date -u -d \"+{expires_in} seconds\" +%Y-%m-%dT%H:%M:%SZ)\n\
             printf '{{\"Version\": 1, \"AccessKeyId\": \"test\", \"SecretAccessKey\": \"test\", \
             \"SessionToken\": \"session\", \"Expiration\": \"%s\"}}' \"$expiry\"\n",
            calls = calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "[profile temporary]\ncredential_process = {}\nregion = us-east-1\n",
            script.display()
        ),
    )
    .unwrap();
    config
}

/// Drain 1,000 messages with the profile; how many times the credentials were fetched.
async fn drain_with_credentials_expiring_in(expires_in: u32) -> usize {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let bodies = login_etl::sample::generate(&login_etl::sample::SampleSpec {
        count: 1000,
        bad_share: 0.01,
        seed: 41,
    });
    queue.send(&bodies).await;
    let dir = std::env::temp_dir().join(unique("login-etl-credentials"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = profile(&dir, expires_in);
    let out = run_drain_with(
        binary(&queue, &db)
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("none"))
            .env("AWS_PROFILE", "temporary"),
    );
    let counts = db.counts().await;
    let quarantined: i64 = counts.quarantined_by_code.iter().map(|(_, n)| n).sum();
    assert_eq!(
        (counts.rows, quarantined, counts.processed),
        (990, 10, 1000),
        "{out}"
    );
    assert_eq!(queue.remaining().await, 0);
    let calls = std::fs::read_to_string(dir.join("calls"))
        .unwrap_or_default()
        .lines()
        .count();
    let _ = std::fs::remove_dir_all(&dir);
    calls
}

fn run_drain_with(cmd: &mut std::process::Command) -> String {
    let out = run_ok(cmd.args(["run", "--drain"]).env("LOGIN_ETL_LOG", "warn"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn credentials_are_fetched_once_while_valid_and_renewed_before_they_expire() {
    // 1,000 messages take at least 100 receive and 100 delete calls on the hot path.
    let long_lived = drain_with_credentials_expiring_in(3600).await;
    assert!(
        (1..=10).contains(&long_lived),
        "credentials valid for an hour were fetched {long_lived} times"
    );
    eprintln!("credentials valid for an hour: fetched {long_lived} times");
    // Within five minutes of expiring, every hot call renews them first.
    let about_to_expire = drain_with_credentials_expiring_in(240).await;
    eprintln!("credentials expiring in 4 minutes: fetched {about_to_expire} times");
    assert!(
        about_to_expire >= 100,
        "credentials expiring in 4 minutes were fetched only {about_to_expire} times"
    );
}
