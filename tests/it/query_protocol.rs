//! SQS servers that speak only the older query protocol, like the take-home's LocalStack image:
//! LocalStack 1.4 (HTTP 500 "Missing Action" to JSON requests) and moto 4.1.10 (HTTP 200 with
//! XML). The same scenarios as in JSON mode, with the default `--sqs-protocol auto`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use login_etl::source::{SqsProtocol, SqsSource};

use crate::helpers::*;

const SWITCH_LINE: &str = "using the query protocol for the rest of the run";

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_drains_on_a_query_only_localstack_with_auto_detection() {
    let queue = TestQueue::query_only(30).await;
    let log = binary_drains_the_sample(&queue, Redeliveries::None).await;
    assert_eq!(log.matches(SWITCH_LINE).count(), 1, "said once: {log}");
    assert!(log.contains("Missing Action"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_drains_on_moto_4_1_10_with_auto_detection() {
    require_stack();
    let endpoint = moto_sqs_endpoint();
    require_endpoint(&endpoint, "moto 4.1.10");
    // A short visibility timeout: what moto brings back is received again soon. Set after the
    // create: moto takes the first, JSON CreateQueue with default attributes before auto-detection
    // resends it in the query form, and then calls the attributes a different queue.
    let queue = TestQueue::at(&endpoint, 30).await;
    login_etl::source::sqs::client(&queue.settings())
        .await
        .set_queue_attributes()
        .queue_url(queue.source.queue_url())
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "5",
        )
        .send()
        .await
        .unwrap();
    let log = binary_drains_the_sample(&queue, Redeliveries::Possible).await;
    assert_eq!(log.matches(SWITCH_LINE).count(), 1, "said once: {log}");
    assert!(log.contains("XML"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn redelivery_after_commit_adds_no_duplicate_over_the_query_protocol() {
    redelivery_after_commit_adds_no_duplicate(&TestQueue::query_only(1).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_visibility_heartbeat_works_over_the_query_protocol() {
    slow_commit_keeps_messages_invisible(&TestQueue::query_only(2).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn max_receives_works_over_the_query_protocol() {
    received_too_often_is_processed_alone(&TestQueue::query_only(1).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_forwarded_over_the_query_protocol() {
    let (queue, dlq) = (
        TestQueue::query_only(30).await,
        TestQueue::query_only(30).await,
    );
    dead_letters_are_forwarded_raw(&queue, &dlq).await;
}

/// Bodies that XML escaping, entity decoding or CDATA handling could change.
fn hostile_bodies() -> Vec<String> {
    // 250 KB of the characters XML must escape, multi-byte ones included.
    let big: String = "<&>\"'é😀 ]]> &amp; "
        .chars()
        .cycle()
        .scan(0, |bytes, c| {
            *bytes += c.len_utf8();
            (*bytes <= 250 * 1024).then_some(c)
        })
        .collect();
    vec![
        r#"{"ip":"&#49;0.0.0.1","x":"&lt;b&gt; &amp;amp; &#x1F600;"}"#.to_string(),
        r#""quotes" & <tags> 'apostrophes' > & <"#.to_string(),
        "non-ASCII: Grüße, 日本語, Ωμέγα, ñ".to_string(),
        "emoji: 😀🚀👩‍💻🏳️‍🌈".to_string(),
        r#"<?xml version="1.0"?><login><ip>10.1.2.3</ip><!-- c --></login>"#.to_string(),
        "ends a CDATA ]]> and opens one <![CDATA[ x ]]>".to_string(),
        "  leading and trailing spaces, a tab\tand newlines\r\n\n  ".to_string(),
        big,
    ]
}

/// A body whose text looks like XML entities. LocalStack 1.4 cannot return it: its SQS serializer
/// writes `"` as `&quot;` and then turns every `&amp;quot;` back into `&quot;`
/// (`SqsResponseSerializer._node_to_string`), so a literal `&quot;` comes back as `"` for any
/// client. moto and current LocalStack return it intact.
const ENTITY_LOOKALIKE: &str =
    r#"{"user_id":"&quot;not an entity&quot;","ip":"&#49;&#48;.0.0.1","x":"&lt;b&gt; &amp;amp;"}"#;

async fn round_trip(source: &SqsSource, entity_lookalike: bool) {
    let mut bodies = hostile_bodies();
    if entity_lookalike {
        bodies.push(ENTITY_LOOKALIKE.to_string());
    }
    // One body per call: the 250 KB one alone fills a request.
    for body in &bodies {
        source.send(std::slice::from_ref(body)).await.unwrap();
    }
    let mut got = BTreeSet::new();
    let started = Instant::now();
    while got.len() < bodies.len() && started.elapsed() < Duration::from_secs(120) {
        let envelopes = source.receive(10, Duration::from_secs(1)).await.unwrap();
        let receipts: Vec<_> = envelopes.iter().map(|e| e.receipt_handle.clone()).collect();
        got.extend(envelopes.into_iter().map(|e| e.body));
        if !receipts.is_empty() {
            source.delete(&receipts).await.unwrap();
        }
    }
    for body in &bodies {
        let shown: String = body.chars().take(60).collect();
        assert!(
            got.contains(body),
            "not byte-exact after the round trip: {shown:?}"
        );
    }
    assert_eq!(got.len(), bodies.len());
    let depth = source.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (0, 0), "all deleted");
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_round_trip_byte_for_byte_on_every_query_only_sqs() {
    round_trip(&TestQueue::query_only(30).await.source, false).await;
    let moto = moto_sqs_endpoint();
    require_endpoint(&moto, "moto 4.1.10");
    round_trip(&TestQueue::at(&moto, 30).await.source, true).await;
}

/// Current LocalStack also speaks the query protocol, so the translator is checked against the
/// same server JSON mode is.
#[tokio::test(flavor = "multi_thread")]
async fn forced_query_protocol_round_trips_on_current_localstack() {
    let queue = TestQueue::new(30).await;
    let settings = login_etl::source::SqsSettings {
        protocol: SqsProtocol::Query,
        ..queue.settings()
    };
    round_trip(&SqsSource::connect(&settings).await.unwrap(), true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_only_against_a_query_only_sqs_fails_at_once_naming_the_flag() {
    let (db, queue) = (TestDb::new().await, TestQueue::query_only(30).await);
    let started = Instant::now();
    let out = run_binary(
        binary(&queue, &db)
            .env("LOGIN_ETL_SQS_PROTOCOL", "json")
            .args(["run", "--drain"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_stopped_at_once(&stderr, started.elapsed());
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("--sqs-protocol query"), "{}", errors[0]);
    assert!(!stderr.contains(SWITCH_LINE));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_queue_on_a_query_only_sqs_is_the_same_one_line_error() {
    let (db, queue) = (TestDb::new().await, TestQueue::query_only(30).await);
    let out = run_binary(
        binary(&queue, &db)
            .env("LOGIN_ETL_QUEUE_NAME", "no-such-queue")
            .args(["run", "--drain"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error:") && last.contains("`no-such-queue` does not exist"),
        "{stderr}"
    );
}

/// DeleteMessageBatch reports failures per entry: the good receipt is deleted, the bad one is
/// counted, and the call itself succeeds.
async fn per_entry_delete_failures(source: &SqsSource) {
    source.send(&["one".to_string()]).await.unwrap();
    let mut got = Vec::new();
    let started = Instant::now();
    while got.is_empty() && started.elapsed() < Duration::from_secs(120) {
        got = source.receive(10, Duration::from_secs(1)).await.unwrap();
    }
    let receipts = vec![
        got[0].receipt_handle.clone(),
        login_etl::source::ReceiptHandle("not-a-receipt-handle".into()),
    ];
    assert_eq!(source.delete(&receipts).await.unwrap(), 1, "one failure");
    let depth = source.depth().await.unwrap();
    assert_eq!(
        (depth.visible, depth.in_flight),
        (0, 0),
        "the good one is deleted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_batch_failures_are_reported_per_entry_on_every_query_only_sqs() {
    per_entry_delete_failures(&TestQueue::query_only(30).await.source).await;
    let moto = moto_sqs_endpoint();
    require_endpoint(&moto, "moto 4.1.10");
    per_entry_delete_failures(&TestQueue::at(&moto, 30).await.source).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_and_queue_attributes_work_on_a_query_only_sqs() {
    let queue = TestQueue::query_only(7).await;
    let attributes = login_etl::source::sqs::client(&queue.settings())
        .await
        .get_queue_attributes()
        .queue_url(queue.source.queue_url())
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    assert_eq!(
        attributes[&aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout],
        "7",
        "CreateQueue's attribute, read back by GetQueueAttributes"
    );
    queue.send(&sample_bodies()).await;
    assert_eq!(queue.remaining().await, 100);
    queue.source.purge().await.unwrap();
    wait_until("purged", Duration::from_secs(120), || async {
        queue.remaining().await == 0
    })
    .await;
}
