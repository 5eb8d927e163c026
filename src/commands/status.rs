//! `login-etl status`: queue depth and what has landed in the database.

use anyhow::Context;

use super::open_queue;
use crate::cli::StatusArgs;
use crate::sink::PgSink;
use crate::source::SqsSettings;

pub(super) async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let source = open_queue(&SqsSettings::from(&args.sqs)).await?;
    let depth = source.depth().await?;
    println!(
        "queue {}: {} visible, {} in flight",
        source.queue_url(),
        depth.visible,
        depth.in_flight
    );
    let mut sink = PgSink::new(args.db.database_url.expose())?;
    let counts = sink.counts().await.with_context(|| {
        format!(
            "cannot count rows in {} (has `migrate` run?)",
            sink.target()
        )
    })?;
    println!("user_logins: {} rows", counts.rows);
    let by_code: Vec<String> = counts
        .quarantined_by_code
        .iter()
        .map(|(code, n)| format!("{code}: {n}"))
        .collect();
    let detail = if by_code.is_empty() {
        String::new()
    } else {
        format!(" ({})", by_code.join(", "))
    };
    println!("quarantined_messages: {}{detail}", counts.quarantined());
    println!("processed_messages: {} message ids", counts.processed);
    Ok(())
}
