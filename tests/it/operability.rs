//! What an operator sees: `/metrics` checked against the database and the queue, `/readyz` and
//! `/healthz` following real outages, JSON logs, and progress output with and without a terminal.

use std::collections::HashMap;
use std::time::Duration;

use crate::helpers::*;

/// `name{labels}` → value, from the Prometheus text format.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn metric(metrics: &HashMap<String, f64>, name: &str) -> f64 {
    *metrics.get(name).unwrap_or(&0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_match_the_database_and_the_queue_exactly() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    db.sink().migrate().await.unwrap();
    let bodies = synthetic(2000, 51);
    queue.send(&bodies).await;
    let mut run = Spawned::new(binary(&queue, &db).args([
        "run",
        "--metrics-addr",
        ANY_PORT,
        "--batch-size",
        "100",
        "--wait-time-seconds",
        "1",
    ]));
    let port = run.metrics_port().await;
    // During the drain: the endpoint answers and never counts ahead of the database.
    wait_until("the first rows", Duration::from_secs(60), || async {
        db.counts().await.rows > 0
    })
    .await;
    let (status, during) = http_get(port, "/metrics").await.expect("serving");
    assert_eq!(status, 200);
    let during = parse_metrics(&during);
    assert!(metric(&during, "login_etl_messages_received_total") > 0.0);
    wait_until("the drain", Duration::from_secs(60), || async {
        db.counts().await.processed == 2000
    })
    .await;
    // Until every delete is counted and a depth probe has run since (the probe has its own
    // interval): a condition, not a guess of how long that takes on this machine.
    let depth = |m: &HashMap<String, f64>| {
        metric(m, "login_etl_queue_visible_messages{queue=\"source\"}")
            + metric(m, "login_etl_queue_in_flight_messages{queue=\"source\"}")
    };
    wait_until(
        "the deletes counted, the depth probed",
        Duration::from_secs(120),
        || async {
            let Some((200, text)) = http_get(port, "/metrics").await else {
                return false;
            };
            let m = parse_metrics(&text);
            metric(&m, "login_etl_deletes_total") == 2000.0
                && m.contains_key("login_etl_queue_visible_messages{queue=\"source\"}")
                && depth(&m) == 0.0
                && queue.remaining().await == 0
        },
    )
    .await;

    let (status, text) = http_get(port, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert_no_raw_pii(&text, &raw_pii(&bodies), "/metrics");
    let m = parse_metrics(&text);
    let counts = db.counts().await;
    assert_eq!(metric(&m, "login_etl_messages_received_total"), 2000.0);
    assert_eq!(
        metric(&m, "login_etl_rows_written_total"),
        counts.rows as f64
    );
    for (code, n) in &counts.quarantined_by_code {
        let name = format!("login_etl_quarantined_total{{reason=\"{code}\"}}");
        assert_eq!(metric(&m, &name), *n as f64, "{name}");
    }
    assert_eq!(metric(&m, "login_etl_duplicates_skipped_total"), 0.0);
    assert_eq!(metric(&m, "login_etl_deletes_total"), 2000.0);
    assert_eq!(metric(&m, "login_etl_delete_failures_total"), 0.0);
    assert_eq!(metric(&m, "login_etl_batch_size_messages_sum"), 2000.0);
    assert_eq!(
        metric(&m, "login_etl_batch_size_messages_count"),
        metric(&m, "login_etl_batches_committed_total")
    );
    assert_eq!(
        metric(&m, "login_etl_end_to_end_latency_seconds_count"),
        2000.0
    );
    assert!(metric(&m, "login_etl_commit_duration_seconds_count") > 0.0);
    assert_eq!(metric(&m, "login_etl_messages_held"), 0.0);
    assert!(metric(&m, "login_etl_last_commit_timestamp_seconds") > 1.7e9);
    assert_eq!(depth(&m), queue.remaining().await as f64);
    let build_info = format!(
        r#"login_etl_build_info{{version="{}",commit="{}",strategy="hmac-sha256",key_id="k1"}} 1"#,
        env!("CARGO_PKG_VERSION"),
        login_etl::GIT_COMMIT
    );
    assert!(text.contains(&build_info), "{text}");
    assert!(text.contains("# TYPE login_etl_commit_duration_seconds histogram"));
    assert_eq!(http_get(port, "/healthz").await.unwrap().0, 200);
    assert_eq!(http_get(port, "/readyz").await.unwrap().0, 200);

    run.sigterm();
    assert!(
        run.wait(Duration::from_secs(30)).await.success(),
        "{}",
        run.log()
    );
    assert_landed(&db, &queue, counts.rows, 2000 - counts.rows).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_a_postgres_outage() {
    let cluster = TempCluster::new();
    let queue = TestQueue::new(30).await;
    let mut run = Spawned::new(binary_for(&queue, &cluster.url("postgres")).args([
        "run",
        "--metrics-addr",
        ANY_PORT,
        "--wait-time-seconds",
        "1",
    ]));
    let port = run.metrics_port().await;
    let ready = |want: u16| async move {
        matches!(http_get(port, "/readyz").await, Some((status, _)) if status == want)
    };
    wait_until("ready", Duration::from_secs(30), || ready(200)).await;
    cluster.stop();
    wait_until("not ready", Duration::from_secs(30), || ready(503)).await;
    let (_, why) = http_get(port, "/readyz").await.unwrap();
    assert!(
        why.starts_with("PostgreSQL") && why.lines().count() == 1,
        "{why}"
    );
    assert_eq!(
        http_get(port, "/healthz").await.unwrap().0,
        200,
        "alive all along"
    );
    cluster.start();
    wait_until("ready again", Duration::from_secs(30), || ready(200)).await;
    run.sigterm();
    assert!(
        run.wait(Duration::from_secs(30)).await.success(),
        "{}",
        run.log()
    );
}

#[cfg(feature = "test-hooks")]
#[tokio::test(flavor = "multi_thread")]
async fn healthz_fails_when_a_receiver_dies() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    db.sink().migrate().await.unwrap();
    slow_down_copy(&db, 4).await; // keeps the process alive while it commits what it holds
    let mut run = Spawned::new(
        binary(&queue, &db)
            .env("LOGIN_ETL_TEST_PANIC_IN_RECEIVER", "1")
            .args(["run", "--receivers", "1", "--wait-time-seconds", "1"])
            .args(["--metrics-addr", ANY_PORT]),
    );
    let port = run.metrics_port().await;
    wait_until("alive", Duration::from_secs(30), || async {
        matches!(http_get(port, "/healthz").await, Some((200, _)))
    })
    .await;
    queue.send(&sample_bodies()).await;
    wait_until("not alive", Duration::from_secs(30), || async {
        matches!(http_get(port, "/healthz").await, Some((503, why)) if why.contains("receiver"))
    })
    .await;
    assert!(!run.wait(Duration::from_secs(30)).await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_parse_line_by_line_and_carry_no_raw_pii() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let bodies = sample_bodies();
    queue.send(&bodies).await;
    let out = run_ok(binary(&queue, &db).args(["--log-format", "json", "run", "--drain"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut lines = 0;
    for line in stderr.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            value["timestamp"].is_string() && value["level"].is_string(),
            "{line}"
        );
        lines += 1;
    }
    assert!(lines > 3, "{stderr}");
    assert_no_raw_pii(&stderr, &raw_pii(&bodies), "the JSON logs");
    assert_landed(&db, &queue, 99, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_gets_a_progress_bar_and_a_pipe_gets_no_escape_codes() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    queue.send(&synthetic(300, 52)).await;
    let piped = run_drain(&queue, &db, &[]);
    assert!(!piped.stderr.contains(&0x1b) && !piped.stdout.contains(&0x1b));

    queue.send(&synthetic(300, 53)).await;
    // `script` gives the binary a pseudo-terminal, as an operator's shell would.
    let bin = env!("CARGO_BIN_EXE_login-etl");
    let mut cmd = binary(&queue, &db);
    cmd.env("LOGIN_ETL_LOG", "warn").env("TERM", "xterm").args([
        "-qec",
        &format!("{bin} run --drain"),
        "/dev/null",
    ]);
    let mut script = std::process::Command::new("script");
    script.env_clear();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            script.env(key, value);
        }
    }
    let out = script
        .args(cmd.get_args())
        .output()
        .expect("script(1) from util-linux");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("messages") && screen.contains("eta"),
        "{screen}"
    );
    assert_eq!(db.counts().await.processed, 600);
}
