//! The database password: it never reaches stdout, stderr or an error, whatever way connecting
//! fails; and a refused password is a fault retrying cannot fix, so it stops at once.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::helpers::*;

/// Characters a password may hold; the reserved ones are percent-encoded in the URL.
const PASSWORD_CHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/:@?#%&=+!$'()*,;[]~ -._";

/// A password with a random marker (found whether it leaks raw or encoded) and random characters.
fn password(rng: &mut StdRng) -> (String, String) {
    let marker: String = (0..12)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz"[rng.gen_range(0..26)]))
        .collect();
    let rest: String = (0..rng.gen_range(4..24))
        .map(|_| char::from(PASSWORD_CHARS[rng.gen_range(0..PASSWORD_CHARS.len())]))
        .collect();
    (format!("Pw{marker}{rest}"), marker)
}

/// `text` as the userinfo of a URL: everything but the unreserved characters percent-encoded.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every way the binary is asked to connect: each command, text and JSON logs.
const INVOCATIONS: &[&[&str]] = &[
    &["check"],
    &["status"],
    &["run", "--drain"],
    &["--log-format", "json", "run", "--drain"],
];

/// Run `args` against `url`, retrying writes for at most `retry_seconds`; it must fail. Its
/// stdout and stderr together, and how long it took.
fn fails_with(
    queue: &TestQueue,
    url: &str,
    retry_seconds: u32,
    args: &[&str],
) -> (String, Duration) {
    let started = Instant::now();
    let out = run_binary(
        binary_for(queue, url)
            .env("LOGIN_ETL_WRITE_RETRY_SECONDS", retry_seconds.to_string())
            .args(args),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{args:?} must fail against {url}");
    (text, started.elapsed())
}

/// A database URL made around a (percent-encoded) password.
type UrlWith<'a> = Box<dyn Fn(&str) -> String + 'a>;

/// A cluster asking for passwords, with a role `etl` whose password is `right`.
async fn password_cluster() -> TempCluster {
    let cluster = TempCluster::with_passwords();
    pg_client(&cluster.url("postgres"))
        .await
        .batch_execute("CREATE ROLE etl LOGIN PASSWORD 'right'")
        .await
        .unwrap();
    cluster
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_password_never_reaches_logs_or_errors() {
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let queue = TestQueue::new(30).await;
    let cluster = password_cluster().await;
    // Port 1 (tcpmux): nothing listens there on this machine, and nothing can take it unprivileged.
    let closed_port = 1;
    let cases: Vec<(&str, UrlWith)> = vec![
        (
            "connection refused",
            Box::new(move |pw| format!("postgres://etl:{pw}@127.0.0.1:{closed_port}/postgres")),
        ),
        (
            "unknown host",
            Box::new(|pw| format!("postgres://etl:{pw}@no-such-host.invalid:5432/postgres")),
        ),
        (
            "TLS refused (verify-full against the local server)",
            Box::new(|pw| {
                format!("postgres://postgres:{pw}@127.0.0.1:5432/postgres?sslmode=verify-full")
            }),
        ),
        (
            "password refused",
            Box::new(|pw| format!("postgres://etl:{pw}@127.0.0.1:{}/postgres", cluster.port)),
        ),
        (
            "no such database, after the password was checked",
            Box::new(|_| format!("postgres://etl:right@127.0.0.1:{}/nowhere", cluster.port)),
        ),
    ];
    for (what, url) in &cases {
        for args in INVOCATIONS {
            let (pw, marker) = password(&mut rng);
            let url = url(&encoded(&pw));
            // A short retry budget: a connection refused is retried, and its end is the test.
            let (output, _) = fails_with(&queue, &url, 2, args);
            for secret in [pw.as_str(), &encoded(&pw), &marker, ":right@"] {
                assert!(
                    !output.contains(secret),
                    "{what}: {args:?} printed the password (seed {seed}):\n{output}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_password_stops_at_once_with_one_line() {
    let queue = TestQueue::new(30).await;
    let cluster = password_cluster().await;
    let url = format!("postgres://etl:wrong@127.0.0.1:{}/postgres", cluster.port);
    for args in INVOCATIONS.iter().copied().chain([&["migrate"][..]]) {
        // A retry loop would last 600 s in run, 30 s in migrate (its start-up budget): it shows.
        let (output, took) = fails_with(&queue, &url, 600, args);
        assert!(
            took < Duration::from_secs(15),
            "{args:?} took {took:?}:\n{output}"
        );
        assert!(
            !output.contains("retrying"),
            "{args:?} retried a refused password:\n{output}"
        );
        let errors: Vec<&str> = (output.lines())
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{args:?}: one error line:\n{output}");
        // `check` names it on its ✗ line and ends with its count of failed checks.
        assert!(
            (output.lines())
                .filter(|l| l.starts_with("error:") || l.starts_with('✗'))
                .any(
                    |l| l.contains("password authentication failed") && l.contains("etl@127.0.0.1")
                ),
            "{args:?}: one line names the refusal and the target:\n{output}"
        );
    }
}
