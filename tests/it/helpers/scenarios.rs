//! Scenarios that run against more than one SQS (LocalStack 4.10 in JSON mode, and the
//! query-only emulators of `query_protocol.rs`): each takes the queue to use and asserts exact
//! counts.

use std::time::Duration;

use login_etl::mask::Field;
use login_etl::pipeline::{self, PipelineSettings};
use login_etl::transform;
use tokio_util::sync::CancellationToken;

use super::*;

/// What the emulator may do on top of SQS semantics.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redeliveries {
    /// Every message is received exactly once (LocalStack).
    None,
    /// moto 4.1.10: a message may reach two concurrent ReceiveMessage calls (its receive is not
    /// atomic), and a deleted message may come back: `Queue.delete_message` copies the message
    /// list, drops the message and writes the list back without a lock, so two concurrent
    /// DeleteMessageBatch calls (login-etl runs up to eight) can undo each other's delete after
    /// both reported success. The ledger must skip every extra copy; what came back is received
    /// again once its visibility runs out, and drained (as duplicates) until the queue is empty.
    Possible,
}

/// The sample drains to 99 rows + 1 quarantined, no raw PII anywhere; a second run receives
/// nothing (every message was deleted), applies no migration and changes no table.
/// Returns the first run's log. Shared with the query-protocol tests.
pub(crate) async fn binary_drains_the_sample(
    queue: &TestQueue,
    redeliveries: Redeliveries,
) -> String {
    let db = TestDb::new().await;
    let bodies = sample_bodies();
    assert_eq!(bodies.len(), 100);
    queue.send(&bodies).await;

    let out = run_binary(binary(queue, &db).args(["run", "--drain"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run --drain failed: {stderr}");
    let number = |label: &str| -> u64 {
        stdout
            .split(label)
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `{label}` in {stdout}"))
    };
    let (received, duplicates) = (number("received "), number("duplicates skipped "));
    assert!(
        stdout.contains("written 99, quarantined 1"),
        "summary: {stdout}"
    );
    assert_eq!(
        received,
        100 + duplicates,
        "every extra delivery skipped: {stdout}"
    );
    let delete_failures = number("delete failures ");
    if redeliveries == Redeliveries::None {
        assert_eq!((duplicates, delete_failures), (0, 0), "summary: {stdout}");
    }

    let counts = db.counts().await;
    assert_eq!(counts.rows, 99);
    assert_eq!(
        counts.quarantined_by_code,
        vec![("invalid_fields".to_string(), 1)]
    );
    assert_eq!(counts.processed, 100);
    if redeliveries == Redeliveries::Possible {
        drain_what_came_back(queue, &db, &counts).await;
    }
    // Visible + in flight: nothing is left, not even a message still invisible.
    assert_eq!(queue.remaining().await, 0, "queue not drained: {stdout}");

    // Masks are the keyed HMAC of the canonical values, so a given device is findable.
    let client = db.client().await;
    let first: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    let expected = masker().mask(Field::DeviceId, first["device_id"].as_str().unwrap());
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM user_logins WHERE masked_device_id = $1 AND user_id = $2",
            &[&expected, &first["user_id"].as_str().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);

    // No raw ip/device_id in any table or in the (debug-level) logs.
    let raw = raw_pii(&bodies);
    assert!(raw.len() >= 190);
    assert_no_raw_pii(&db.dump_all_tables().await, &raw, "the database");
    assert_no_raw_pii(&stderr, &raw, "the logs");
    assert_no_raw_pii(&stdout, &raw, "stdout");

    // Every message was deleted and the schema is current: a second run receives nothing,
    // migrates nothing and changes nothing.
    let again = run_drain(queue, &db, &[]);
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(said.contains("received 0"), "second run: {said}");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("migrations_applied=0"),
        "the second run applied a migration again"
    );
    assert_eq!(db.counts().await, counts);
    stderr.into_owned()
}

/// Messages committed but never deleted come back after the visibility timeout (1 s on `queue`)
/// and are skipped. Shared with the query-protocol tests.
pub(crate) async fn redelivery_after_commit_adds_no_duplicate(queue: &TestQueue) {
    let db = TestDb::new().await;
    let bodies = sample_bodies();
    queue.send(&bodies).await;

    // A consumer that commits a batch and dies before deleting it.
    let mut sink = db.sink();
    sink.migrate().await.unwrap();
    let mut committed = 0;
    for _ in 0..3 {
        let envelopes = queue
            .source
            .receive(10, Duration::from_secs(1))
            .await
            .unwrap();
        let outcomes: Vec<_> = envelopes
            .iter()
            .flat_map(|e| transform::process(e, &masker(), chrono::Utc::now()))
            .collect();
        committed += sink.write_batch(&outcomes).await.unwrap().rows;
    }
    assert!(committed > 0);
    // Let the visibility timeout (1 s) expire: SQS hands the same messages out again.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let summary = drain(queue, &db).await;
    assert!(summary.duplicates >= committed, "{summary}");
    assert_landed(&db, queue, 99, 1).await;
}

/// The heartbeat extends the visibility (2 s on `queue`) of a batch whose commit is slow.
/// Shared with the query-protocol tests.
pub(crate) async fn slow_commit_keeps_messages_invisible(queue: &TestQueue) {
    let db = TestDb::new().await;
    db.sink().migrate().await.unwrap();
    slow_down_copy(&db, 5).await;
    queue.send(&sample_bodies()).await;

    let mut run = Spawned::new(binary(queue, &db).args([
        "run",
        "--drain",
        "--wait-time-seconds",
        "1",
        "--batch-max-wait-ms",
        "1000", // one batch for all 100 messages
    ]));
    wait_until("the slow commit", Duration::from_secs(30), || async {
        sleeping_backends(&db).await > 0
    })
    .await;
    // Well past the 2 s visibility timeout, the messages must still be hidden.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let depth = queue.source.depth().await.unwrap();
    assert_eq!(
        (depth.visible, depth.in_flight),
        (0, 100),
        "still invisible while committing"
    );

    let status = run.wait(Duration::from_secs(60)).await;
    assert!(status.success(), "{}", run.log());
    assert!(run.log().contains("visibility extended"));
    assert!(
        run.stdout()
            .contains("received 100, written 99, quarantined 1, duplicates skipped 0"),
        "{}",
        run.stdout()
    );
    assert_eq!(queue.remaining().await, 0);
}

/// Past --max-receives a message is processed alone (visibility 1 s on `queue`). Shared with the
/// query-protocol tests.
pub(crate) async fn received_too_often_is_processed_alone(queue: &TestQueue) {
    let db = TestDb::new().await;
    let bodies = synthetic(20, 13);
    queue.send(&bodies).await;
    // Two deliveries that never got deleted (a consumer that kept dying).
    for _ in 0..2 {
        let mut seen = 0;
        while seen < 20 {
            seen += queue
                .source
                .receive(10, Duration::from_secs(1))
                .await
                .unwrap()
                .len();
        }
        // Until their visibility runs out (a condition, not a sleep: the machine may be slow).
        wait_until(
            "the messages visible again",
            Duration::from_secs(60),
            || async { queue.source.depth().await.unwrap().visible == 20 },
        )
        .await;
    }
    let mut sink = db.sink();
    sink.migrate().await.unwrap();
    let summary = pipeline::run(
        queue.source.clone(),
        sink,
        masker(),
        PipelineSettings {
            max_receives: 2,
            ..drain_settings()
        },
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let valid = valid_count(&bodies);
    assert_eq!(summary.written as i64, valid, "{summary}");
    assert_landed(&db, queue, valid, 20 - valid).await;
    assert_no_poison(&db).await;
    // Alone: each message's ledger entry was written by a transaction of its own.
    let transactions: i64 = db
        .scalar("SELECT count(DISTINCT xmin::text) FROM processed_messages")
        .await;
    assert_eq!(transactions, 20, "every suspect committed alone");
}

/// Quarantined messages go raw, with reason attributes, to `dlq`. Shared with the
/// query-protocol tests.
pub(crate) async fn dead_letters_are_forwarded_raw(queue: &TestQueue, dlq: &TestQueue) {
    let db = TestDb::new().await;
    let ids = queue.send(&sample_bodies()).await;
    let mut sink = db.sink();
    sink.migrate().await.unwrap();
    let settings = PipelineSettings {
        dead_letter_queue: Some(dlq.source.queue_url().to_string()),
        ..drain_settings()
    };
    pipeline::run(
        queue.source.clone(),
        sink,
        masker(),
        settings,
        CancellationToken::new(),
    )
    .await
    .unwrap();

    let client = login_etl::source::sqs::client(&dlq.settings()).await;
    let out = client
        .receive_message()
        .queue_url(dlq.source.queue_url())
        .message_attribute_names("All")
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let messages = out.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1);
    let dead = &messages[0];
    assert_eq!(
        dead.body(),
        Some(login_etl::sample::WRONG_MESSAGE_TYPE),
        "forwarded raw"
    );
    let attributes = dead.message_attributes.clone().unwrap_or_default();
    let attr = |name: &str| attributes[name].string_value.clone().unwrap();
    assert_eq!(attr("login-etl-reason-code"), "invalid_fields");
    let sample = sample_bodies();
    let wrong_type = sample
        .iter()
        .position(|b| b == login_etl::sample::WRONG_MESSAGE_TYPE)
        .unwrap();
    assert_eq!(
        attr("login-etl-source-message-id"),
        ids[wrong_type].as_str()
    );
    assert_eq!(db.counts().await.quarantined(), 1);
}

/// moto only (see [`Redeliveries::Possible`]): once no message is in flight any more (the
/// queue's visibility timeout has run out for anything that came back), drain again until the
/// queue is empty. Each drain may only skip duplicates: the tables stay exactly as they were.
async fn drain_what_came_back(
    queue: &TestQueue,
    db: &TestDb,
    counts: &login_etl::sink::TableCounts,
) {
    for _ in 0..3 {
        wait_until("no message in flight", Duration::from_secs(120), || async {
            queue.source.depth().await.unwrap().in_flight == 0
        })
        .await;
        let back = queue.remaining().await;
        if back == 0 {
            return;
        }
        eprintln!("moto brought back {back} deleted message(s); draining them again");
        let again = run_drain(queue, db, &[]);
        let said = String::from_utf8_lossy(&again.stdout);
        assert!(said.contains("written 0, quarantined 0"), "{said}");
        assert_eq!(
            &db.counts().await,
            counts,
            "a message that came back added nothing"
        );
    }
}
