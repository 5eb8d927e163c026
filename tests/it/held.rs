//! Held messages (issue 30, class 8): every message the process holds — waiting in a receiver,
//! the channel or the batcher, or being committed — stays invisible through a long write stall.
//! The "3-minute stall with 30 s visibility", scaled down with its ratio kept: a stall of
//! at least 6 visibility timeouts. No message may be received twice.

use std::time::Duration;

use crate::helpers::*;

/// Visibility timeout of the test queue, in seconds.
const VISIBILITY: u64 = 4;

#[tokio::test(flavor = "multi_thread")]
async fn a_long_write_stall_keeps_every_held_message_invisible() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(VISIBILITY as u32).await);
    // More than the pipeline holds (two batches in the channel, one in the batcher, one receive
    // per receiver), in generated shapes.
    let bodies = synthetic(400, 30);
    let valid = valid_count(&bodies);
    queue.send(&bodies).await;
    db.sink().migrate().await.unwrap();
    // The stall: another session holds user_logins locked, so the first COPY waits.
    let locker = db.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE user_logins IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut run = Spawned::new(
        binary(&queue, &db)
            .args(["run", "--drain", "--batch-size", "50", "--receivers", "2"])
            .env("LOGIN_ETL_WAIT_TIME_SECONDS", "1")
            .env("LOGIN_ETL_LOG", "info"),
    );
    let name = db.name.clone();
    wait_until(
        "the writer waits for the lock",
        Duration::from_secs(60),
        || {
            let db = &db;
            let name = name.clone();
            async move {
                let waiting: i64 = db
                    .client()
                    .await
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                     AND wait_event_type = 'Lock'",
                        &[&name],
                    )
                    .await
                    .unwrap()
                    .get(0);
                waiting > 0
            }
        },
    )
    .await;
    wait_until("the pipeline is full", Duration::from_secs(60), || async {
        queue.source.depth().await.unwrap().in_flight >= 150
    })
    .await;
    // Stall for 8 visibility timeouts (the ratio of a 3-minute stall to 30 s is 6).
    tokio::time::sleep(Duration::from_secs(8 * VISIBILITY)).await;
    let in_flight = queue.source.depth().await.unwrap().in_flight;
    locker.batch_execute("COMMIT").await.unwrap();
    let status = run.wait(Duration::from_secs(180)).await;
    let log = run.log();
    assert!(status.success(), "{log}");
    assert!(
        in_flight >= 150,
        "every held message still invisible at the stall's end: {in_flight}"
    );
    let summary = run.stdout();
    let sent = bodies.len();
    assert!(
        summary.contains(&format!("received {sent},")) && summary.contains("duplicates skipped 0,"),
        "no message received twice: {summary}"
    );
    let counts = db.counts().await;
    assert_eq!(counts.rows, valid);
    assert_eq!(counts.processed, sent as i64);
    assert_eq!(queue.remaining().await, 0);
}
