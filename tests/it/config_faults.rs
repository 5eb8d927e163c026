//! Faults a person must fix — no credentials, an endpoint that is not the SQS we speak, a schema
//! that refuses a migration — stop at once with one line naming the fix, and never echo what a
//! reply carried. And a task that panics ends the run non-zero instead of "success".

use std::time::Instant;

use crate::helpers::*;

/// Exit non-zero without a retry; stderr.
fn fails_fast(cmd: &mut std::process::Command) -> String {
    let started = Instant::now();
    let out = run_binary(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "must fail: {stderr}");
    assert_stopped_at_once(&stderr, started.elapsed());
    stderr
}

/// The last line of stderr: what the user reads first.
fn error_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_aws_credentials_and_no_endpoint_is_one_line_at_once() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let home = std::env::temp_dir().join(unique("login-etl-nohome"));
    std::fs::create_dir_all(&home).unwrap();
    let stderr = fails_fast(
        binary(&queue, &db)
            .env_remove("LOGIN_ETL_SQS_ENDPOINT")
            .env("HOME", &home)
            .env("AWS_CONFIG_FILE", home.join("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("none"))
            .env("AWS_REGION", "us-east-1")
            .args(["run", "--drain"]),
    );
    let line = error_line(&stderr);
    assert!(line.contains("no AWS credentials found"), "{stderr}");
    assert!(
        line.contains("--sqs-endpoint") && line.contains("AWS_PROFILE"),
        "{line}"
    );
    assert!(
        line.len() < 400,
        "one readable line, not an SDK dump: {line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_region_is_named_at_once() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let stderr = fails_fast(
        binary(&queue, &db)
            .env_remove("LOGIN_ETL_SQS_ENDPOINT")
            .args(["run", "--drain", "--region", "us-eats-1"]),
    );
    assert!(
        error_line(&stderr).contains("`us-eats-1` is not an AWS region name"),
        "{stderr}"
    );
}

fn query_protocol_xml(_: &str, _: u16) -> Reply {
    (
        200,
        "text/xml",
        "<?xml version=\"1.0\"?><GetQueueUrlResponse><GetQueueUrlResult><QueueUrl>\
         http://localhost/000000000000/q</QueueUrl></GetQueueUrlResult></GetQueueUrlResponse>"
            .into(),
    )
}

fn missing_action(_: &str, _: u16) -> Reply {
    (
        500,
        "application/json",
        r#"{"__type": "InternalError", "message": "exception while calling sqs with unknown operation: Operation detection failed. Missing Action in request for query-protocol service"}"#.into(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_that_speaks_only_the_query_protocol_is_named_at_once() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    for reply in [query_protocol_xml as fn(&str, u16) -> Reply, missing_action] {
        let fake = FakeSqs::start(reply).await;
        let stderr = fails_fast(
            binary(&queue, &db)
                .env("LOGIN_ETL_SQS_ENDPOINT", fake.endpoint())
                .env("LOGIN_ETL_SQS_PROTOCOL", "json")
                .args(["run", "--drain"]),
        );
        let line = error_line(&stderr);
        assert!(line.contains("does not answer like SQS"), "{stderr}");
        assert!(line.contains("query protocol"), "{line}");
        assert!(line.contains("--sqs-protocol query"), "{line}");
        assert!(
            !stderr.contains("GetQueueUrlResponse"),
            "the reply is not echoed"
        );
    }
}

const LEAKY_IP: &str = "203.0.113.77";
const LEAKY_DEVICE: &str = "999-88-7777";

/// A queue that resolves and describes itself correctly, then sends a ReceiveMessage reply that
/// does not parse, carrying a message with PII.
fn broken_receive(operation: &str, port: u16) -> Reply {
    let body = match operation {
        "GetQueueUrl" => format!(r#"{{"QueueUrl":"http://127.0.0.1:{port}/000000000000/q"}}"#),
        "GetQueueAttributes" => r#"{"Attributes":{"VisibilityTimeout":"30"}}"#.into(),
        _ => format!(
            r#"{{"Messages":[{{"MessageId":"m1","ReceiptHandle":"r1","Body":"{{\"ip\":\"{LEAKY_IP}\",\"device_id\":\"{LEAKY_DEVICE}\"}}","Attributes":{{"SentTimestamp":[1"#
        ),
    };
    (200, "application/x-amz-json-1.0", body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_that_fails_to_parse_never_reaches_the_logs() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let fake = FakeSqs::start(broken_receive).await;
    let stderr = fails_fast(
        binary(&queue, &db)
            .env("LOGIN_ETL_SQS_ENDPOINT", fake.endpoint())
            .args(["run", "--drain"]),
    );
    assert!(
        error_line(&stderr).contains("not an SQS response"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(LEAKY_IP) && !stderr.contains(LEAKY_DEVICE),
        "raw PII of the reply leaked into the (trace-level) logs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migration_the_data_refuses_stops_at_once_instead_of_retrying() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    // A bookkeeping table whose CHECK refuses version 2: a data error (SQLSTATE 23514) inside
    // the migration, which no retry can fix.
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE login_etl_schema_migrations (version integer PRIMARY KEY \
             CHECK (version < 2), name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .unwrap();
    let stderr =
        fails_fast(binary(&queue, &db).args(["run", "--drain", "--write-retry-seconds", "60"]));
    assert!(error_line(&stderr).contains("SQLSTATE 23514"), "{stderr}");
    assert!(
        !stderr.contains("not reachable yet"),
        "a data error is not an outage: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_migration_is_refused() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    db.sink().migrate().await.unwrap();
    db.client()
        .await
        .batch_execute(
            "UPDATE login_etl_schema_migrations SET checksum = 'edited' WHERE version = 2",
        )
        .await
        .unwrap();
    let stderr = fails_fast(binary(&queue, &db).arg("migrate"));
    assert!(
        error_line(&stderr).contains("migration 2 (ledger_and_quarantine) was edited"),
        "{stderr}"
    );
}

#[cfg(feature = "test-hooks")]
#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_receiver_ends_the_run_non_zero_and_loses_nothing() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    queue.send(&sample_bodies()).await;
    let out = run_binary(
        binary(&queue, &db)
            .env("LOGIN_ETL_TEST_PANIC_IN_RECEIVER", "1")
            .args(["run", "--drain"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a panic is not success: {stderr}");
    assert!(
        error_line(&stderr).contains("receiver task panicked"),
        "{stderr}"
    );

    queue.until_none_in_flight().await;
    run_drain(&queue, &db, &[]);
    assert_landed(&db, &queue, 99, 1).await;
}
