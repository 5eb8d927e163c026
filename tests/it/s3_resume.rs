//! A resumed S3 download is trusted only when it continues the same content to the same end (an
//! attack review of issue 34's resume), and a notification handed back to other consumers does
//! not spend one of its `--max-receives`, nor the slack `check` keeps under a redrive policy.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

fn login(i: usize) -> String {
    json!({
        "user_id": format!("r34-user-{i}"), "ip": format!("198.51.{}.{}", (i / 250) % 250, i % 250),
        "device_id": format!("r34-dev-{i}"), "device_type": "ios", "locale": "NZ",
        "app_version": "2.3.0"
    })
    .to_string()
}

fn ndjson(n: usize) -> Vec<u8> {
    ((0..n).map(login).collect::<Vec<_>>().join("\n") + "\n").into_bytes()
}

fn notification(key: &str) -> String {
    json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "fake-bucket"}, "object": {"key": key, "eTag": "abc", "size": 1}}}]})
    .to_string()
}

/// `run --drain` until the queue is empty (at most four times); then (rows, rows whose user_id
/// is upper case, quarantine entries).
async fn drain(queue: &TestQueue, db: &TestDb, endpoint: &str) -> (i64, i64, i64) {
    for _ in 0..4 {
        run_ok(
            binary(queue, db)
                .env("AWS_ENDPOINT_URL_S3", endpoint)
                .args(["run", "--drain"]),
        );
        queue.until_none_in_flight().await;
        if queue.remaining().await == 0 {
            break;
        }
    }
    assert_eq!(queue.remaining().await, 0, "notifications left");
    (
        db.scalar("SELECT count(*) FROM user_logins").await,
        db.scalar("SELECT count(*) FROM user_logins WHERE user_id LIKE 'R34-%'")
            .await,
        db.scalar("SELECT count(*) FROM quarantined_messages").await,
    )
}

/// A resumed reply that ends cleanly, its `Content-Length` met, short of the end its
/// `Content-Range` claims: a break like any other, resumed again from where it stopped. (Before,
/// the clean end was taken as the object's: the logins after it were lost, the object "finished".)
#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_reply_that_ends_short_is_resumed_again() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    db.sink().migrate().await.unwrap();
    let body = ndjson(3000);
    let (len, partial) = (body.len(), body.len() / 3 + 11);
    let breaks = Breaks {
        cut: 1,
        partial,
        ranges: true,
        lie: Lie::EndsShort,
    };
    let fake = FakeS3::start(body, breaks).await;
    queue.send(&[notification("short.ndjson")]).await;
    let landed = drain(&queue, &db, &fake.endpoint).await;
    let short_end = (partial + (len - partial) / 2) as u64;
    assert_eq!(
        (fake.asked(), landed),
        (vec![0, partial as u64, short_end], (3000, 0, 0)),
        "(first byte of each GET, (rows, upper-case rows, quarantine entries))"
    );
    assert_eq!(object_progress(&db).await, vec![(3000, 3, true)]);
}

/// A resume answered with other content (another ETag: the object was written again since the
/// first GET) is not spliced onto what was read: the notification comes back and the object is
/// read again from its start. Nothing of the other content lands, as a row or in quarantine.
#[tokio::test(flavor = "multi_thread")]
async fn a_resume_that_finds_other_content_reads_the_object_again() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    db.sink().migrate().await.unwrap();
    let body = ndjson(3000);
    let partial = body.len() / 2 + 5;
    let breaks = Breaks {
        cut: 1,
        partial,
        ranges: true,
        lie: Lie::Changed,
    };
    let fake = FakeS3::start(body, breaks).await;
    queue.send(&[notification("changed.ndjson")]).await;
    let landed = drain(&queue, &db, &fake.endpoint).await;
    assert_eq!(
        (fake.asked(), landed),
        (vec![0, partial as u64, 0], (3000, 0, 0)),
        "(first byte of each GET, (rows, upper-case rows, quarantine entries))"
    );
    assert_eq!(object_progress(&db).await, vec![(3000, 3, true)]);
}

/// `--max-receives 1`: a notification handed back by the receiver that got it with another one
/// (receive count 2 when it is read), whose first read fails for a transient reason, comes back
/// and lands; it is not quarantined as "received 2 times, more than --max-receives 1".
#[tokio::test(flavor = "multi_thread")]
async fn a_handed_back_notification_keeps_its_retries() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    db.sink().migrate().await.unwrap();
    // The first four GETs break off and their resume is refused (a 200 to a ranged request):
    // each notification's first read fails, whichever is read first.
    let breaks = Breaks {
        cut: 4,
        partial: 100,
        ranges: false,
        lie: Lie::None,
    };
    let fake = FakeS3::start(ndjson(500), breaks).await;
    queue
        .send(&[notification("a.ndjson"), notification("b.ndjson")])
        .await;
    let mut consumer = Spawned::new(
        binary(&queue, &db)
            .env("AWS_ENDPOINT_URL_S3", &fake.endpoint)
            .args(["run", "--receivers", "1", "--max-receives", "1"]),
    );
    let settled = tokio::time::timeout(Duration::from_secs(90), async {
        while queue.remaining().await > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    consumer.kill9();
    assert!(
        settled.is_ok(),
        "notifications still on the queue after 90 s"
    );
    let rows: i64 = db.scalar("SELECT count(*) FROM user_logins").await;
    let entries: i64 = db.scalar("SELECT count(*) FROM quarantined_messages").await;
    assert_eq!(
        (rows, entries, fake.asked().len() >= 6),
        (1000, 0, true),
        "(rows, quarantine entries, at least six GETs)"
    );
}

/// --max-receives 1 with a redrive policy of maxReceiveCount 4 (what `check` accepts). An object
/// of 3,000 logins whose second chunk kills its consumer; one receive of the notification is spent
/// without an attempt (a lost ReceiveMessage reply, simulated by receiving it here). login-etl must
/// still quarantine the poison chunk itself and land the other 2,000 logins.
#[cfg(feature = "test-hooks")]
#[tokio::test(flavor = "multi_thread")]
async fn a_poison_chunk_is_quarantined_before_the_redrive_policy_takes_its_notification() {
    use aws_sdk_sqs::types::QueueAttributeName;
    use login_etl::pipeline::Source;
    let (db, queue) = (TestDb::new().await, TestQueue::new(2).await);
    db.sink().migrate().await.unwrap();
    let client = login_etl::source::sqs::client(&queue.settings()).await;
    let dlq = client
        .create_queue()
        .queue_name(format!("{}-dlq", queue.name))
        .send()
        .await
        .unwrap();
    let arn = client
        .get_queue_attributes()
        .queue_url(dlq.queue_url().unwrap())
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let url = client
        .get_queue_url()
        .queue_name(&queue.name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": arn, "maxReceiveCount": "4"}).to_string(),
        )
        .send()
        .await
        .unwrap();
    let marker = "r34-kills-its-consumer";
    let body = ((0..3000)
        .map(|i| match i {
            1500 => login(i).replace("r34-user-1500", marker),
            i => login(i),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n")
        .into_bytes();
    let fake = FakeS3::start(
        body,
        Breaks {
            cut: 0,
            partial: usize::MAX,
            ranges: true,
            lie: Lie::None,
        },
    )
    .await;
    let notification = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "fake-bucket"}, "object": {"key": "a.ndjson", "eTag": "abc", "size": 1}}}]})
    .to_string();
    queue.send(&[notification]).await;
    let run = || {
        let out = run_binary(
            binary(&queue, &db)
                .env("AWS_ENDPOINT_URL_S3", &fake.endpoint)
                .env("LOGIN_ETL_TEST_ABORT_ON_BODY", marker)
                .args([
                    "run",
                    "--drain",
                    "--max-receives",
                    "1",
                    "--batch-max-wait-ms",
                    "300",
                ]),
        );
        let _ = out; // it aborts on the poison chunk until that is quarantined
    };
    // Receives 1 and 2: the consumer dies on the poison chunk.
    for _ in 0..2 {
        run();
        queue.until_none_in_flight().await;
    }
    // Receive 3: spent without an attempt.
    let spent = Source::receive(&queue.source, 1, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(spent.len(), 1, "the notification, received a third time");
    queue.until_none_in_flight().await;
    for _ in 0..3 {
        run();
        queue.until_none_in_flight().await;
    }
    let rows: i64 = db.scalar("SELECT count(*) FROM user_logins").await;
    let poison: i64 = db
        .scalar("SELECT count(*) FROM quarantined_messages WHERE reason_code = 'too_many_receives'")
        .await;
    assert_eq!(
        (rows, poison),
        (2000, 1),
        "(rows, poison entries): the notification went to the SQS dead-letter queue first"
    );
}
