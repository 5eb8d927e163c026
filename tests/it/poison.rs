//! Crash loops versus poison messages: SQS counts every delivery, including deliveries to a
//! consumer that died for reasons of its own. Valid logins must land as rows however often their
//! consumers died; only a message that kills or fails its consumer when processed alone, more
//! than --max-receives times, is quarantined as `too_many_receives`.

use std::time::{Duration, Instant};

use crate::helpers::*;

/// 3 consumers on a queue with a 2 s visibility timeout and --max-receives 2 (so that a crash
/// loop pushes many messages past it); one consumer is SIGKILLed and restarted about every
/// second for up to a minute.
#[cfg(feature = "test-hooks")]
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_loop_turns_no_valid_login_into_quarantine() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    db.sink().migrate().await.unwrap();
    let bodies = login_etl::sample::generate(&login_etl::sample::SampleSpec {
        count: 3000,
        bad_share: 0.003,
        seed: 31,
    });
    let valid = valid_count(&bodies);
    assert!(3000 - valid >= 5, "a handful of bad messages");
    queue.send(&bodies).await;

    // The crashing consumer commits its first batch and then stalls before deleting it (a test
    // hook), so that every kill finds it holding messages, however fast this machine is.
    let consumer = |crashing: bool| {
        let mut cmd = binary(&queue, &db);
        if crashing {
            cmd.env("LOGIN_ETL_TEST_STALL_AFTER_COMMIT", "1");
        }
        cmd.env("LOGIN_ETL_LOG", "info").args([
            "run",
            "--max-receives",
            "2",
            "--batch-size",
            "100",
            "--wait-time-seconds",
            "1",
        ]);
        Spawned::new(&mut cmd)
    };
    // The crash loop runs alone for its first five kills (so messages it held come back again and
    // again and pass --max-receives however fast this machine is), then beside two steady
    // consumers until the queue is empty.
    let mut crashing = consumer(true);
    let mut steady = Vec::new();
    let started = Instant::now();
    let mut kills = 0;
    // A limit far above the drain, only so a stuck drain ends the loop (the steady consumers
    // drain the queue; the final drains below take what they leave).
    while started.elapsed() < Duration::from_secs(300) && (queue.remaining().await > 0 || kills < 5)
    {
        tokio::time::sleep(Duration::from_millis(600 + (kills % 5) * 200)).await;
        crashing.kill9();
        kills += 1;
        crashing = consumer(true);
        if kills == 5 {
            steady = vec![consumer(false), consumer(false)];
        }
    }
    crashing.kill9();
    let mut suspects = 0;
    for mut consumer in steady {
        consumer.sigterm();
        let status = consumer.wait(Duration::from_secs(60)).await;
        assert!(status.success(), "{}", consumer.log());
        suspects += consumer
            .log()
            .matches("processing a much-redelivered message alone")
            .count();
    }
    assert!(kills >= 5, "the crash loop ran ({kills} kills)");
    // Before poison detection, each of these was quarantined as `too_many_receives`.
    assert!(
        suspects > 0,
        "the crash loop pushed messages past --max-receives"
    );
    // Whatever the killed consumer held comes back after the visibility timeout.
    for _ in 0..10 {
        if queue.remaining().await == 0 {
            break;
        }
        queue.until_none_in_flight().await;
        run_binary(binary(&queue, &db).args(["run", "--drain", "--max-receives", "2"]));
    }

    assert_landed(&db, &queue, valid, 3000 - valid).await;
    assert_no_poison(&db).await;
}

/// A message that aborts the process whenever it is about to be committed (a test hook) ends in
/// quarantine as `too_many_receives` after --max-receives solo attempts; every other message of
/// its batches lands as a row.
#[cfg(feature = "test-hooks")]
#[tokio::test(flavor = "multi_thread")]
async fn a_message_that_kills_its_consumer_every_time_is_quarantined_as_poison() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    let mut bodies = synthetic(30, 41);
    bodies.retain(|b| login_etl::validate::decode(b).is_ok());
    let good = bodies.len() as i64;
    let marker = "kills-its-consumer";
    bodies.insert(
        good as usize / 2,
        format!(
            r#"{{"user_id":"{marker}","device_type":"ios","ip":"198.51.100.9","device_id":"123-45-6789"}}"#
        ),
    );
    queue.send(&bodies).await;

    let mut runs = 0;
    let mut aborted = 0;
    while queue.remaining().await > 0 && runs < 30 {
        let out = run_binary(
            binary(&queue, &db)
                .env("LOGIN_ETL_TEST_ABORT_ON_BODY", marker)
                .env("LOGIN_ETL_LOG", "info")
                .args([
                    "run",
                    "--drain",
                    "--max-receives",
                    "2",
                    "--batch-max-wait-ms",
                    "500",
                ]),
        );
        runs += 1;
        if !out.status.success() {
            aborted += 1;
            queue.until_none_in_flight().await;
        }
    }
    assert!(
        aborted >= 3,
        "the marker killed its consumer ({aborted} aborts in {runs} runs)"
    );
    assert_landed(&db, &queue, good, 1).await;
    let (code, reason): (String, String) = {
        let row = db
            .client()
            .await
            .query_one("SELECT reason_code, reason FROM quarantined_messages", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(code, "too_many_receives");
    assert!(
        reason.contains("processed alone 2 times without finishing"),
        "{reason}"
    );
    let left: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM poison_attempts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "attempts are cleared when the message commits");
}
