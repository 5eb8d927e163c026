//! Aurora-style failover with real servers: primary A streams to standby B (pg_basebackup -R);
//! login-etl writes through a TCP proxy that plays the cluster's DNS name. Mid-drain A turns
//! read-only and drops its sessions, new connections still reach A for 10 s, then B is promoted
//! and the name moves to B. Every message lands exactly once in B, soon after the promotion.
//! And a server that stays read-only ends the run after the write budget, saying so.

use std::time::{Duration, Instant};

use crate::helpers::*;

const DB: &str = "logins";

/// Make the server read-only for new transactions and drop every session of `DB`.
async fn demote(cluster: &TempCluster) {
    let admin = pg_client(&cluster.url("postgres")).await;
    // One statement each: ALTER SYSTEM refuses to run inside a (multi-statement) transaction.
    for sql in [
        "ALTER SYSTEM SET default_transaction_read_only = on",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&DB],
        )
        .await
        .unwrap();
}

/// A primary with the schema applied through `proxy`.
async fn primary_with_schema(queue: &TestQueue) -> (TempCluster, PgProxy) {
    let primary = TempCluster::new();
    pg_client(&primary.url("postgres"))
        .await
        .batch_execute(&format!("CREATE DATABASE {DB}"))
        .await
        .unwrap();
    let proxy = PgProxy::start(primary.port).await;
    let through_proxy = format!("postgres://postgres@127.0.0.1:{}/{DB}", proxy.port);
    run_ok(binary_for(queue, &through_proxy).arg("migrate"));
    (primary, proxy)
}

/// The waits (`retry_in=…`) of the retry lines that name the read-only writer.
fn read_only_waits(log: &str) -> Vec<Duration> {
    log.lines()
        .filter(|l| l.contains("read-only"))
        .filter_map(|l| l.split_once("retry_in=")?.1.split_whitespace().next())
        .map(|wait| parse_debug_duration(wait).unwrap_or_else(|| panic!("a wait of {wait}")))
        .collect()
}

/// A `Duration` as `{:?}` prints it (`1.5s`, `250ms`, `80µs`).
fn parse_debug_duration(text: &str) -> Option<Duration> {
    let number = |s: &str| s.parse::<f64>().ok();
    if let Some(ms) = text.strip_suffix("ms") {
        Some(Duration::from_secs_f64(number(ms)? / 1e3))
    } else if let Some(us) = text.strip_suffix("µs") {
        Some(Duration::from_secs_f64(number(us)? / 1e6))
    } else if let Some(ns) = text.strip_suffix("ns") {
        Some(Duration::from_secs_f64(number(ns)? / 1e9))
    } else {
        Some(Duration::from_secs_f64(number(text.strip_suffix('s')?)?))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failover_lands_every_message_once_in_the_new_writer() {
    let queue = TestQueue::new(30).await;
    let (primary, proxy) = primary_with_schema(&queue).await;
    let standby = TempCluster::standby_of(&primary);
    let bodies = synthetic(20_000, 61);
    let valid = valid_count(&bodies);
    queue.send(&bodies).await;
    let through_proxy = format!("postgres://postgres@127.0.0.1:{}/{DB}", proxy.port);
    let mut run = Spawned::new(
        binary_for(&queue, &through_proxy)
            .env("LOGIN_ETL_LOG", "info")
            .args(["run", "--drain", "--write-retry-seconds", "240"]),
    );
    let a = primary.url(DB);
    wait_until(
        "a quarter committed on A",
        Duration::from_secs(120),
        || async { pg_count(&a, "SELECT count(*) FROM processed_messages").await >= 5_000 },
    )
    .await;
    demote(&primary).await;
    // DNS lag: new connections still reach the old writer, now read-only, until login-etl has
    // met it (a condition: how long that takes depends on the machine, not on the scenario).
    wait_until(
        "the read-only writer met",
        Duration::from_secs(120),
        || async { run.log().contains("read-only") },
    )
    .await;
    let on_a = pg_count(&a, "SELECT count(*) FROM processed_messages").await;
    standby.promote();
    proxy.switch_to(standby.port);
    let promoted = Instant::now();
    let b = standby.url(DB);
    wait_until("the first commit on B", Duration::from_secs(60), || async {
        pg_count(&b, "SELECT count(*) FROM processed_messages").await > on_a
    })
    .await;
    let resumed = promoted.elapsed();
    let status = run.wait(Duration::from_secs(300)).await;
    let after_promotion = promoted.elapsed();
    let log = run.log();
    assert!(status.success(), "{log}");
    // "Soon after the promotion", checked by its mechanism rather than by a stopwatch: every wait
    // behind a read-only writer is capped at 2 s (`Classify::max_wait`), not backed off to the
    // write budget's scale.
    let waits = read_only_waits(&log);
    assert!(
        !waits.is_empty(),
        "the read-only writer was not noticed: {log}"
    );
    let longest = waits.iter().max().unwrap();
    assert!(
        *longest <= Duration::from_secs(2),
        "a wait behind the read-only writer of {longest:?}, over the 2 s cap"
    );
    let (rows, quarantined, ledger) = (
        pg_count(&b, "SELECT count(*) FROM user_logins").await,
        pg_count(&b, "SELECT count(*) FROM quarantined_messages").await,
        pg_count(&b, "SELECT count(*) FROM processed_messages").await,
    );
    assert_eq!((rows, quarantined, ledger), (valid, 20_000 - valid, 20_000));
    assert!(
        on_a < 20_000,
        "the failover happened mid-drain ({on_a} committed on A)"
    );
    assert_eq!(queue.remaining().await, 0);
    eprintln!(
        "failover: {on_a} messages on A before it turned read-only, the rest on B; writes resumed {resumed:?} and the drain ended {after_promotion:?} after the promotion"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_stays_read_only_ends_the_run_after_the_budget() {
    let queue = TestQueue::new(30).await;
    let (primary, proxy) = primary_with_schema(&queue).await;
    demote(&primary).await;
    queue.send(&sample_bodies()[..10]).await;
    let through_proxy = format!("postgres://postgres@127.0.0.1:{}/{DB}", proxy.port);
    let started = Instant::now();
    let out = run_binary(binary_for(&queue, &through_proxy).args([
        "run",
        "--drain",
        "--write-retry-seconds",
        "5",
    ]));
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error:") && last.contains("read-only"),
        "{last}"
    );
    // The point is "no retry past the budget": a bound the default budget (300 s) would exceed,
    // far enough above 5 s that a loaded machine does not reach it.
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert_eq!(queue.remaining().await, 10, "nothing was deleted");
}

#[tokio::test(flavor = "multi_thread")]
async fn several_hosts_with_target_session_attrs_reach_the_writer() {
    let queue = TestQueue::new(30).await;
    let (reader, _proxy) = primary_with_schema(&queue).await;
    demote(&reader).await;
    let writer = TempCluster::new();
    pg_client(&writer.url("postgres"))
        .await
        .batch_execute(&format!("CREATE DATABASE {DB}"))
        .await
        .unwrap();
    // The read-only server first: libpq's target_session_attrs=read-write skips it.
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{DB}?target_session_attrs=read-write",
        reader.port, writer.port
    );
    queue.send(&sample_bodies()).await;
    run_ok(binary_for(&queue, &url).args(["run", "--drain"]));
    assert_eq!(
        pg_count(&writer.url(DB), "SELECT count(*) FROM user_logins").await,
        99
    );
    assert_eq!(
        pg_count(&reader.url(DB), "SELECT count(*) FROM user_logins").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_says_when_the_database_is_read_only() {
    let queue = TestQueue::new(30).await;
    let (primary, proxy) = primary_with_schema(&queue).await;
    let through_proxy = format!("postgres://postgres@127.0.0.1:{}/{DB}", proxy.port);
    let mut run = Spawned::new(
        binary_for(&queue, &through_proxy)
            .env("LOGIN_ETL_METRICS_ADDR", ANY_PORT)
            .arg("run"),
    );
    let port = run.metrics_port().await;
    wait_until("ready", Duration::from_secs(30), || async {
        http_get(port, "/readyz")
            .await
            .is_some_and(|(status, _)| status == 200)
    })
    .await;
    demote(&primary).await;
    wait_until("not ready: read-only", Duration::from_secs(30), || async {
        http_get(port, "/readyz")
            .await
            .is_some_and(|(status, body)| status == 503 && body.contains("read-only server"))
    })
    .await;
    run.sigterm();
    run.wait(Duration::from_secs(30)).await;
}
