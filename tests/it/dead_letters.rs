//! Dead-letter forwarding within SendMessageBatch's limits: calls split by payload, a message too
//! large to forward counted and logged once (it stays in quarantine), a FIFO dead-letter queue
//! with its group and deduplication ids, and a FIFO source refused at start with one line.

use crate::helpers::*;

/// Every message of `dlq` (at most `expected` of them), with its attributes.
async fn received(dlq: &TestQueue, expected: usize) -> Vec<aws_sdk_sqs::types::Message> {
    let client = login_etl::source::sqs::client(&dlq.settings()).await;
    let mut all = Vec::new();
    for _ in 0..20 {
        let out = client
            .receive_message()
            .queue_url(dlq.source.queue_url())
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        all.extend(out.messages.unwrap_or_default());
        if all.len() >= expected {
            break;
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_splits_by_size_and_a_message_too_large_stays_in_quarantine() {
    let (db, queue, dlq) = (
        TestDb::new().await,
        TestQueue::new(60).await,
        TestQueue::new(60).await,
    );
    // 25 refused bodies of 40 KB (a megabyte in all: more than one call may carry), and one of
    // 262,100 bytes, which its forwarding attributes push past SQS's 256 KiB.
    let mut bodies: Vec<String> = (0..25)
        .map(|i| format!("{i:03} {}", "x".repeat(40_000)))
        .collect();
    bodies.push(format!("big {}", "y".repeat(262_096)));
    let ids = queue.send(&bodies).await;
    let out = run_drain(
        &queue,
        &db,
        &["--dead-letter-queue", dlq.source.queue_url()],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(db.counts().await.quarantined(), 26);
    let dead = received(&dlq, 25).await;
    assert_eq!(dead.len(), 25, "every message that fits was forwarded once");
    let too_large = ids.last().unwrap().as_str();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("not forwarded to the dead-letter queue"))
        .collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(
        said[0].contains(too_large) && said[0].contains("262144"),
        "{}",
        said[0]
    );
    assert_eq!(queue.remaining().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_dead_letter_queue_gets_group_and_deduplication_ids() {
    let (db, queue, dlq) = (
        TestDb::new().await,
        TestQueue::new(30).await,
        TestQueue::fifo().await,
    );
    let ids = queue.send(&sample_bodies()).await;
    run_drain(
        &queue,
        &db,
        &["--dead-letter-queue", dlq.source.queue_url()],
    );
    let dead = received(&dlq, 1).await;
    assert_eq!(dead.len(), 1);
    let attributes = dead[0].attributes.clone().unwrap_or_default();
    let system = |name| attributes.get(&name).cloned().unwrap_or_default();
    use aws_sdk_sqs::types::MessageSystemAttributeName as Name;
    assert_eq!(system(Name::MessageGroupId), "login-etl-quarantine");
    let source_id = dead[0].message_attributes.clone().unwrap_or_default()
        ["login-etl-source-message-id"]
        .string_value
        .clone()
        .unwrap();
    assert!(ids.iter().any(|id| id.as_str() == source_id));
    assert_eq!(system(Name::MessageDeduplicationId), source_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_source_is_refused_at_start_with_one_line() {
    let (db, queue) = (TestDb::new().await, TestQueue::fifo().await);
    let out = run_binary(
        binary(&queue, &db)
            .env_remove("LOGIN_ETL_QUEUE_NAME")
            .env("LOGIN_ETL_QUEUE_URL", queue.source.queue_url())
            .args(["run", "--drain"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error:") && last.contains("FIFO"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_login_of_an_array_is_forwarded_alone_tagged_with_its_index() {
    let (db, queue, dlq) = (
        TestDb::new().await,
        TestQueue::new(30).await,
        TestQueue::new(30).await,
    );
    let bodies = sample_bodies();
    let valid: Vec<&String> = bodies
        .iter()
        .filter(|b| b.contains("device_id"))
        .take(2)
        .collect();
    let invalid = r#"{"user_id":"no-device","ip":"10.0.0.1"}"#;
    let array = format!("[{}, {invalid}, {}]", valid[0], valid[1]);
    let ids = queue.send(&[array]).await;
    run_drain(
        &queue,
        &db,
        &["--dead-letter-queue", dlq.source.queue_url()],
    );
    let dead = received(&dlq, 1).await;
    assert_eq!(dead.len(), 1, "only the refused login, not its siblings");
    assert_eq!(dead[0].body.as_deref(), Some(invalid), "its own text, raw");
    let source_id = dead[0].message_attributes.clone().unwrap_or_default()
        ["login-etl-source-message-id"]
        .string_value
        .clone()
        .unwrap();
    assert_eq!(source_id, format!("{}#1", ids[0]));
    assert_eq!(db.counts().await.rows, 2);
}
