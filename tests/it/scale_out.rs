//! Many consumers on one queue stay exact: the ledger's primary key is the only coordination.

use std::time::Duration;

use crate::helpers::*;

/// The `received N` and `duplicates skipped N` of a consumer's closing summary (its last log line).
fn summary_numbers(log: &str) -> (u64, u64) {
    let stdout = log.rsplit("stopped summary=").next().unwrap_or_default();
    let number_after = |label: &str| {
        stdout
            .split(label)
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `{label}` in the closing summary: {stdout}"))
    };
    (
        number_after("received "),
        number_after("duplicates skipped "),
    )
}

/// 4 processes, 20,000 messages (1 % bad), a 2 s visibility timeout (messages waiting in a busy
/// consumer come back to another one), one consumer SIGKILLed mid-run and never restarted (what
/// it held is redelivered to the others), the rest SIGTERMed after the drain.
#[tokio::test(flavor = "multi_thread")]
async fn four_consumers_one_killed_land_every_message_exactly_once() {
    const SENT: i64 = 20_000;
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    db.sink().migrate().await.unwrap();
    let bodies = synthetic(SENT as usize, 41);
    let valid = valid_count(&bodies);
    assert!(SENT - valid >= 100, "some bad messages");
    queue.send(&bodies).await;

    let consumer = || {
        let mut cmd = binary(&queue, &db);
        cmd.env("LOGIN_ETL_LOG", "info").args([
            "run",
            "--batch-size",
            "200",
            "--wait-time-seconds",
            "1",
        ]);
        Spawned::new(&mut cmd)
    };
    // The one to be killed serves metrics, so what it had received is known at the kill.
    let mut consumers = vec![Spawned::new(
        binary(&queue, &db)
            .env("LOGIN_ETL_LOG", "info")
            .env("LOGIN_ETL_METRICS_ADDR", ANY_PORT)
            .args(["run", "--batch-size", "200", "--wait-time-seconds", "1"]),
    )];
    let port = consumers[0].metrics_port().await;
    consumers.extend((0..3).map(|_| consumer()));

    wait_until(
        "a quarter of the messages committed",
        Duration::from_secs(120),
        || async { db.counts().await.processed >= SENT / 4 },
    )
    .await;
    let (_, metrics) = http_get(port, "/metrics").await.expect("metrics served");
    let killed_received: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("login_etl_messages_received_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("a received count") as u64;
    let mut killed = consumers.remove(0);
    killed.kill9();
    let processed_at_kill = db.counts().await.processed;
    assert!(processed_at_kill < SENT, "killed mid-run");

    wait_until(
        "every message processed and deleted",
        Duration::from_secs(300),
        || async { db.counts().await.processed == SENT && queue.remaining().await == 0 },
    )
    .await;
    let (mut received, mut duplicates) = (0, 0);
    for mut survivor in consumers {
        survivor.sigterm();
        let status = survivor.wait(Duration::from_secs(60)).await;
        assert!(status.success(), "{}", survivor.log());
        let (r, d) = summary_numbers(&survivor.log());
        received += r;
        duplicates += d;
    }
    assert_landed(&db, &queue, valid, SENT - valid).await;
    // Deliveries exceed messages: what the killed consumer held (received, not yet deleted) was
    // handed to a survivor too.
    assert!(
        received + killed_received > SENT as u64,
        "survivors received {received}, the killed one {killed_received}, of {SENT}"
    );
    eprintln!(
        "killed one received {killed_received}; survivors received {received} and skipped {duplicates} \
         duplicates; {} deliveries for {SENT} messages",
        received + killed_received
    );
}
