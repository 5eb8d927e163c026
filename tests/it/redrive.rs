//! Redrive (issue 30, class 7): dead letters sent back to the source queue — by SQS's own
//! StartMessageMoveTask, and as a second copy of each — are the messages they were. A login now
//! accepted lands once and resolves its quarantine entry; one still refused keeps its one entry
//! (attempts counted) and is not forwarded again. Generated messages: single logins and arrays,
//! valid, refused for good, and refused by a constraint that is dropped before the redrive.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};

use crate::helpers::*;

pub(crate) const SOURCE_ATTRIBUTE: &str = "login-etl-source-message-id";
pub(crate) const SENT_ATTRIBUTE: &str = "login-etl-source-sent-at";

/// What a generated set holds: bodies, and the users of its logins by fate.
#[derive(Default)]
struct Set {
    bodies: Vec<String>,
    valid: BTreeSet<String>,
    blocked: BTreeSet<String>,
    refused: usize,
}

/// Messages from `seed`: one login or an array of 2–3, each valid, refused for good (no
/// device_id) or `blocked-…` (refused by the database until the constraint goes).
fn generate(seed: u64, messages: usize) -> Set {
    let mut state = seed | 1;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut set = Set::default();
    for m in 0..messages {
        let count = if next(2) == 0 {
            1
        } else {
            2 + next(2) as usize
        };
        let logins: Vec<String> = (0..count)
            .map(|l| {
                let user = format!("u{seed}-{m}-{l}");
                match next(3) {
                    0 => {
                        set.refused += 1;
                        format!(r#"{{"user_id":"{user}","device_type":"ios","ip":"10.1.{m}.{l}"}}"#)
                    }
                    fate => {
                        let user = if fate == 1 { format!("blocked-{user}") } else { user };
                        let body = format!(
                            r#"{{"user_id":"{user}","device_type":"android","ip":"10.2.{m}.{l}","device_id":"dev-{m}-{l}","locale":"RU","app_version":"2.3.0"}}"#
                        );
                        match fate {
                            1 => set.blocked.insert(user),
                            _ => set.valid.insert(user),
                        };
                        body
                    }
                }
            })
            .collect();
        set.bodies.push(if count == 1 && next(2) == 0 {
            logins[0].clone()
        } else {
            format!("[{}]", logins.join(","))
        });
    }
    set
}

async fn users(db: &TestDb) -> Vec<String> {
    let rows = db
        .client()
        .await
        .query("SELECT user_id FROM user_logins ORDER BY 1", &[])
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Make `dlq` a dead-letter queue (of a queue of its own), so StartMessageMoveTask takes it.
pub(crate) async fn move_back(dlq: &TestQueue, to: &TestQueue, anchor: &TestQueue) {
    let client = login_etl::source::sqs::client(&dlq.settings()).await;
    let arn = |q: &TestQueue| {
        let client = client.clone();
        let url = q.source.queue_url().to_string();
        async move {
            client
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap()[&QueueAttributeName::QueueArn]
                .clone()
        }
    };
    let (dlq_arn, to_arn) = (arn(dlq).await, arn(to).await);
    wait_until(
        "the dead letters are visible again",
        Duration::from_secs(60),
        || async { dlq.source.depth().await.unwrap().in_flight == 0 },
    )
    .await;
    client
        .set_queue_attributes()
        .queue_url(anchor.source.queue_url())
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"10"}}"#),
        )
        .send()
        .await
        .unwrap();
    client
        .start_message_move_task()
        .source_arn(&dlq_arn)
        .destination_arn(&to_arn)
        .send()
        .await
        .expect("LocalStack 4.10 has StartMessageMoveTask");
    for _ in 0..600 {
        let tasks = client
            .list_message_move_tasks()
            .source_arn(&dlq_arn)
            .send()
            .await
            .unwrap();
        if tasks
            .results()
            .iter()
            .any(|t| t.status() == Some("COMPLETED"))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the message move task never completed");
}

/// Every message login-etl forwarded to `dlq` (bodies and original ids), left in it (visible
/// again after 2 s).
pub(crate) async fn peek(dlq: &TestQueue, expected: usize) -> Vec<(String, String)> {
    let client = login_etl::source::sqs::client(&dlq.settings()).await;
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..200 {
        let out = client
            .receive_message()
            .queue_url(dlq.source.queue_url())
            .message_attribute_names(SOURCE_ATTRIBUTE)
            .max_number_of_messages(10)
            .visibility_timeout(2)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            // Only those login-etl forwarded (one SQS moved there itself has no original id).
            let attributes = m.message_attributes.unwrap_or_default();
            if let Some(original) = attributes.get(SOURCE_ATTRIBUTE) {
                let original = original.string_value.clone().unwrap();
                seen.insert(m.message_id.unwrap(), (m.body.unwrap(), original));
            }
        }
        if seen.len() >= expected {
            break;
        }
    }
    seen.into_values().collect()
}

/// Send these dead letters to `queue` again, each with its original id.
pub(crate) async fn send_copies(queue: &TestQueue, dead: &[(String, String)]) {
    for (body, original) in dead {
        send_with_attributes(queue, body, &[(SOURCE_ATTRIBUTE, original)]).await;
    }
}

/// Send `body` with these string message attributes (a copy made by hand).
pub(crate) async fn send_with_attributes(
    queue: &TestQueue,
    body: &str,
    attributes: &[(&str, &str)],
) {
    let client = login_etl::source::sqs::client(&queue.settings()).await;
    let mut send = (client.send_message())
        .queue_url(queue.source.queue_url())
        .message_body(body);
    for (name, value) in attributes {
        let value = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(*value)
            .build()
            .unwrap();
        send = send.message_attributes(*name, value);
    }
    send.send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn redriven_dead_letters_land_once_or_keep_their_one_entry_and_are_not_forwarded_again() {
    for seed in [7_u64, 1_234_567] {
        let (db, queue, dlq, anchor) = (
            TestDb::new().await,
            TestQueue::new(30).await,
            TestQueue::new(30).await,
            TestQueue::new(30).await,
        );
        let set = generate(seed, 14);
        db.sink().migrate().await.unwrap();
        let constraint = "ALTER TABLE user_logins ADD CONSTRAINT not_blocked \
                          CHECK (user_id NOT LIKE 'blocked-%')";
        db.client().await.batch_execute(constraint).await.unwrap();
        queue.send(&set.bodies).await;
        let dlq_flag = ["--dead-letter-queue", dlq.source.queue_url()];
        run_drain(&queue, &db, &dlq_flag);
        let dead_count = set.refused + set.blocked.len();
        assert_eq!(
            users(&db).await,
            set.valid.iter().cloned().collect::<Vec<_>>()
        );
        assert_eq!(db.counts().await.quarantined(), dead_count as i64);

        // The fix ships; every dead letter comes back twice: a copy sent by hand, and the
        // original moved by SQS.
        let dead = peek(&dlq, dead_count).await;
        assert_eq!(dead.len(), dead_count, "each refused login forwarded once");
        send_copies(&queue, &dead).await;
        let drop = "ALTER TABLE user_logins DROP CONSTRAINT not_blocked";
        db.client().await.batch_execute(drop).await.unwrap();
        move_back(&dlq, &queue, &anchor).await;
        let out = run_drain(&queue, &db, &dlq_flag);
        let log = String::from_utf8_lossy(&out.stderr);

        let landed: BTreeSet<String> = users(&db).await.into_iter().collect();
        let expected: BTreeSet<String> = set.valid.union(&set.blocked).cloned().collect();
        assert_eq!(
            users(&db).await.len(),
            expected.len(),
            "a login landed twice"
        );
        assert_eq!(landed, expected);
        let entries = db.counts().await.quarantined();
        assert_eq!(entries, dead_count as i64, "no entry added");
        let client = db.client().await;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE resolved_at IS NOT NULL), \
                 count(*) FILTER (WHERE resolved_at IS NULL AND attempts >= 2), \
                 count(*) FILTER (WHERE resolved_at IS NOT NULL AND user_id NOT LIKE 'blocked-%') \
                 FROM quarantined_messages",
                &[],
            )
            .await
            .unwrap();
        let (resolved, retried, wrong): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(resolved, set.blocked.len() as i64, "{log}");
        assert_eq!(
            retried, set.refused as i64,
            "each still refused: attempts counted"
        );
        assert_eq!(wrong, 0);
        assert_eq!(dlq.remaining().await, 0, "nothing forwarded again: {log}");
        assert_eq!(queue.remaining().await, 0);

        let status = run_ok(binary(&queue, &db).arg("status"));
        let status = String::from_utf8_lossy(&status.stdout);
        let resolved_line = format!("{} resolved", set.blocked.len());
        assert!(status.contains(&resolved_line), "{status}");
        let list = run_ok(binary(&queue, &db).args(["quarantine", "list", "--format", "csv"]));
        let list = String::from_utf8_lossy(&list.stdout);
        let header = list.lines().next().unwrap_or_default();
        assert!(header.ends_with("attempts,resolved_at"), "{header}");
        let resolved_rows = list.lines().skip(1).filter(|l| !l.ends_with(',')).count();
        assert_eq!(resolved_rows, set.blocked.len(), "{list}");
    }
}
