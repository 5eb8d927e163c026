//! A `user_logins` that cannot hold what the writer writes (made or altered by hand) is the
//! table's fault, not the data's: `run` stops at start and `check` reports, naming the column
//! and the fix; a table altered under a running consumer stops it at the first batch. In every
//! case no login is quarantined and no message deleted.

use std::time::Duration;

use login_etl::pipeline::PipelineSettings;

use crate::helpers::*;

/// Columns changed so they cannot hold what is written: (column, ALTER … TYPE clause).
const MISMATCHES: [(&str, &str); 7] = [
    ("masked_ip", "varchar(64)"),
    ("masked_device_id", "varchar(40)"),
    ("user_id", "uuid USING NULL"),
    ("app_version", "integer USING NULL"),
    ("device_type", "varchar(2)"),
    ("sent_at", "timestamp without time zone"),
    // Not a type: a column the writer leaves empty, made NOT NULL.
    (
        "masked_ip_network",
        "varchar(256), ALTER COLUMN masked_ip_network SET NOT NULL",
    ),
];

async fn altered(column: &str, clause: &str) -> TestDb {
    let db = TestDb::new().await;
    db.sink().migrate().await.unwrap();
    db.client()
        .await
        .batch_execute(&format!(
            "ALTER TABLE user_logins ALTER COLUMN {column} TYPE {clause}"
        ))
        .await
        .unwrap();
    db
}

#[tokio::test(flavor = "multi_thread")]
async fn a_column_that_cannot_hold_what_is_written_stops_run_at_start_and_check_names_it() {
    let queue = TestQueue::new(30).await;
    queue.send(&sample_bodies()[..5]).await;
    for (column, clause) in MISMATCHES {
        let db = altered(column, clause).await;
        let out = run_binary(binary(&queue, &db).args(["run", "--drain"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{column}: must stop: {stderr}");
        let line = stderr.lines().last().unwrap_or_default();
        assert!(
            line.contains(&format!("user_logins.{column}")) && line.contains("ALTER TABLE"),
            "{column}: {line}"
        );
        let out = run_binary(binary(&queue, &db).arg("check"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("✗ user_logins.{column}")),
            "{column}: {stdout}"
        );
        let counts = db.counts().await;
        assert_eq!((counts.rows, counts.quarantined()), (0, 0), "{column}");
    }
    assert_eq!(queue.remaining().await, 5, "nothing deleted");
}

/// Altered under a running consumer (the start-up check passed): the first batch's type refusal,
/// met by every login alone, stops the pipeline instead of quarantining the batch.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_altered_under_the_consumer_stops_it_instead_of_quarantining_every_login() {
    let (db, queue) = (
        altered("masked_ip", "varchar(64)").await,
        TestQueue::new(30).await,
    );
    // One message of 20 logins: the batch holds them all, however the receives fall.
    let valid: Vec<String> = sample_bodies()
        .into_iter()
        .filter(|b| b.contains("\"ip\""))
        .take(20)
        .collect();
    queue.send(&[format!("[{}]", valid.join(","))]).await;
    let mut sink = db.sink();
    sink.migrate().await.unwrap();
    let settings = PipelineSettings {
        batch_max_wait: Duration::from_secs(2),
        ..drain_settings()
    };
    let result = login_etl::pipeline::run(
        queue.source.clone(),
        sink,
        masker(),
        settings,
        tokio_util::sync::CancellationToken::new(),
    )
    .await;
    let err = result
        .expect_err("a table that refuses every login stops the run")
        .to_string();
    assert!(
        err.contains("SQLSTATE 22001") && err.contains("login-etl check"),
        "{err}"
    );
    let counts = db.counts().await;
    assert_eq!((counts.rows, counts.quarantined()), (0, 0));
    assert_eq!(queue.remaining().await, 1, "nothing deleted");
}
