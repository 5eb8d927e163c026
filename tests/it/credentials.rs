//! Temporary credentials, as SSO, IRSA and task roles hand them out (here a `credential_process`
//! profile): the hot SQS calls resolve them once and reuse them, renew them before they expire,
//! and a drain with them is exact either way — also when the process fails every few calls or
//! hangs once (a fetch that fails is retried, the last good credentials are kept meanwhile).

use std::path::Path;

use crate::helpers::*;

/// What the `credential_process` does besides answering.
#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    /// Exits 1 on call 1, 1 + n, 1 + 2n, … (so the very first fetch fails too).
    FailEvery(u32),
    /// Hangs (far longer than a fetch may take) on its first call.
    HangOnce,
}

/// A profile whose `credential_process` counts its calls in `calls` and hands out credentials
/// with a session token that expire `expires_in` seconds from each call, unless `fault` says
/// otherwise.
fn profile(dir: &Path, expires_in: u32, fault: Fault) -> std::path::PathBuf {
    let script = dir.join("credentials.sh");
    let calls = dir.join("calls");
    let fault = match fault {
        Fault::None => String::new(),
        Fault::FailEvery(n) => {
            format!("if [ $((n % {n})) -eq 1 ]; then echo 'refused on purpose' >&2; exit 1; fi\n")
        }
        Fault::HangOnce => "if [ \"$n\" -eq 1 ]; then sleep 40; fi\n".into(),
    };
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho call >> '{calls}'\nn=$(wc -l < '{calls}')\n{fault}\
             expiry=$(date -u -d \"+{expires_in} seconds\" +%Y-%m-%dT%H:%M:%SZ)\n\
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
    drain_with(expires_in, Fault::None, 41).await
}

/// Drain 1,000 generated messages (`seed`) with the profile and its `fault`: every login lands
/// exactly once (or is quarantined once), the queue ends empty, the process ends 0; how many
/// times the credentials were fetched.
async fn drain_with(expires_in: u32, fault: Fault, seed: u64) -> usize {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let bodies = login_etl::sample::generate(&login_etl::sample::SampleSpec {
        count: 1000,
        bad_share: 0.01,
        seed,
    });
    queue.send(&bodies).await;
    let dir = std::env::temp_dir().join(unique("login-etl-credentials"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = profile(&dir, expires_in, fault);
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
    // Within five minutes of expiring, they are renewed before the hot calls use them (one
    // fetch at a time: the calls that come meanwhile use the current ones, still valid).
    let about_to_expire = drain_with_credentials_expiring_in(240).await;
    eprintln!("credentials expiring in 4 minutes: fetched {about_to_expire} times");
    assert!(
        about_to_expire >= 10,
        "credentials expiring in 4 minutes were fetched only {about_to_expire} times"
    );
}

#[tokio::test]
async fn a_credential_process_that_fails_every_few_calls_never_stops_the_drain() {
    // Credentials expiring in 4 minutes are renewed again and again, so many fetches fail: the
    // first one at start-up (retried), later ones while the last good credentials are still
    // valid (kept). Generated messages, another sample per case.
    for (n, seed) in [(2, 7), (3, 8), (5, 9)] {
        let calls = drain_with(240, Fault::FailEvery(n), seed).await;
        eprintln!("failing every {n} calls: fetched {calls} times");
        assert!(
            calls > 2 * n as usize,
            "the failing fetches were reached ({calls} calls)"
        );
    }
}

#[tokio::test]
async fn a_credential_process_that_hangs_once_is_timed_out_and_tried_again() {
    let calls = drain_with(3600, Fault::HangOnce, 12).await;
    assert!(
        calls >= 2,
        "the hung fetch was given up and tried again ({calls} calls)"
    );
}
