//! Ledger retention: ids older than `--ledger-retention-days` are pruned in small batches; ids
//! inside the window keep redeliveries out; pruning never blocks the write path.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use chrono::Utc;
use login_etl::transform;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

async fn backdate(db: &TestDb, id: &str, days: i32) {
    db.client()
        .await
        .execute(
            "UPDATE processed_messages SET processed_at = now() - make_interval(days => $2) \
             WHERE message_id = $1",
            &[&id, &days],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_inside_the_retention_survive_pruning_and_keep_redeliveries_out() {
    let db = TestDb::new().await;
    let mut sink = db.sink();
    sink.migrate().await.unwrap();
    let body = &sample_bodies()[0];
    let outcomes: Vec<_> = ["recent", "inside", "outside"]
        .iter()
        .flat_map(|id| transform::process(&envelope(id, body, 0), &masker(), Utc::now()))
        .collect();
    assert_eq!(sink.write_batch(&outcomes).await.unwrap().rows, 3);
    backdate(&db, "inside", 14).await;
    backdate(&db, "outside", 16).await;

    let cutoff = Utc::now() - chrono::Duration::days(15);
    let pruned = db
        .operator()
        .prune_ledger(cutoff, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(pruned, 1, "only the id older than 15 days");

    // The same three messages redelivered: the two inside the window are skipped. (The pruned one
    // lands again — which is why the retention must outlast the queue's: SQS can't redeliver it.)
    let again = sink.write_batch(&outcomes).await.unwrap();
    assert_eq!((again.rows, again.duplicates), (1, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn pruning_never_blocks_the_write_path() {
    let db = TestDb::new().await;
    let mut sink = db.sink();
    sink.migrate().await.unwrap();
    let old = db.client().await;
    old.batch_execute(
        "INSERT INTO processed_messages (message_id, outcome, processed_at)
         SELECT 'old-' || g, 'row', now() - interval '30 days' FROM generate_series(1, 5000) g",
    )
    .await
    .unwrap();

    // A pruning batch that holds its row locks (an open transaction, as if it were slow).
    let mut held = db.client().await;
    let tx = held.transaction().await.unwrap();
    let locked = tx
        .execute(
            "DELETE FROM processed_messages WHERE message_id IN (
                 SELECT message_id FROM processed_messages WHERE processed_at < now() - interval '15 days'
                 ORDER BY processed_at LIMIT 2000 FOR UPDATE SKIP LOCKED)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(locked, 2000);

    // Writes commit meanwhile, and a concurrent pruner skips the locked rows instead of waiting.
    let bodies = synthetic(500, 3);
    let outcomes: Vec<_> = bodies
        .iter()
        .enumerate()
        .flat_map(|(i, b)| {
            transform::process(&envelope(&format!("new-{i}"), b, 0), &masker(), Utc::now())
        })
        .collect();
    let written = tokio::time::timeout(Duration::from_secs(10), sink.write_batch(&outcomes))
        .await
        .expect("the write was not blocked by the open pruning batch")
        .unwrap();
    assert_eq!(written.rows + written.quarantined, 500);
    let mut pruner = db.operator();
    let cutoff = Utc::now() - chrono::Duration::days(15);
    let pruned = tokio::time::timeout(
        Duration::from_secs(10),
        pruner.prune_ledger(cutoff, &CancellationToken::new()),
    )
    .await
    .expect("the second pruner skipped the locked rows instead of waiting")
    .unwrap();
    assert_eq!(pruned, 3000);
    tx.commit().await.unwrap();
    assert_eq!(db.counts().await.processed, 500, "only the new ids remain");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_retention_not_longer_than_the_queue_retention_is_refused() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    login_etl::source::sqs::client(&queue.settings())
        .await
        .set_queue_attributes()
        .queue_url(queue.source.queue_url())
        .attributes(QueueAttributeName::MessageRetentionPeriod, "432000")
        .send()
        .await
        .unwrap();
    let out = run_binary(
        binary(&queue, &db)
            .env("LOGIN_ETL_LEDGER_RETENTION_DAYS", "5")
            .args(["run", "--drain"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error:")
            && last.contains("--ledger-retention-days 5")
            && last.contains("(5 days)")
            && last.contains("at least 6"),
        "{last}"
    );
}
