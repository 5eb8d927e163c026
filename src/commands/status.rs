//! `login-etl status`: queue depth (and the dead-letter queue's) and what has landed.

use super::Globals;
use crate::cli::{DbArgs, SqsArgs};
use crate::safe_text::escape;
use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::open_queue;
use crate::sink::{BackfillProgress, DbStatus, ObjectsProgress, PgOperator};
use crate::source::{QueueDepth, SqsSettings};

/// `status` options.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sqs: SqsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    /// The dead-letter queue's URL, to show its depth too.
    #[arg(long, env = "LOGIN_ETL_DEAD_LETTER_QUEUE")]
    pub dead_letter_queue: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: StatusFormat,
}

/// Output formats of `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// Lines for people.
    Table,
    /// One JSON document.
    Json,
}

pub(super) async fn execute(args: StatusArgs, _: Globals) -> anyhow::Result<()> {
    let source = open_queue(&SqsSettings::from(&args.sqs)).await?;
    let depth = source.depth().await?;
    let dead_letter = match args.dead_letter_queue.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => {
            let dlq = source
                .sibling(url)
                .await
                .context("cannot read the dead-letter queue")?;
            Some((url.to_string(), dlq.depth().await?))
        }
        None => None,
    };
    let mut database = PgOperator::new(&args.db.settings())?;
    let db = database.status().await.with_context(|| {
        format!(
            "cannot read the tables in {} (has `migrate` run?)",
            database.target()
        )
    })?;
    let backfills = database.backfills(None, RECENT_BACKFILLS).await?;
    let live = database.live_objects().await?;
    match args.format {
        StatusFormat::Json => {
            let report = json!({
                "queue": { "url": source.queue_url(), "depth": depth },
                "dead_letter_queue": dead_letter.as_ref().map(|(url, d)| json!({ "url": url, "depth": d })),
                "database": db,
                "s3": { "backfills": backfills, "notified_by_s3": live },
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        StatusFormat::Table => {
            print_table(source.queue_url(), depth, dead_letter, &db);
            print_s3(&backfills, &live);
        }
    }
    Ok(())
}

/// How many backfills `status` shows, newest first.
const RECENT_BACKFILLS: i64 = 3;

/// S3 objects: the recent backfills', and those S3 notified itself.
fn print_s3(backfills: &[BackfillProgress], live: &ObjectsProgress) {
    for b in backfills {
        let place = format!("s3://{}/{}", b.bucket, b.prefix);
        let place = escape(&place);
        println!(
            "backfill {} of {place} ({}): {}",
            b.id,
            b.started_at.format("%Y-%m-%d %H:%M UTC"),
            objects_line(&b.progress)
        );
    }
    if live.objects > 0 {
        println!("S3 objects notified by S3: {}", objects_line(live));
    }
}

/// `31/40 objects read (780000 logins); 4 in flight (52000 logins so far); 5 not started; about 120000 logins to come`
fn objects_line(p: &ObjectsProgress) -> String {
    let mut line = format!(
        "{}/{} objects read ({} logins)",
        p.done, p.objects, p.done_logins
    );
    if p.in_flight > 0 {
        line += &format!(
            "; {} in flight ({} logins so far)",
            p.in_flight, p.in_flight_logins
        );
    }
    if p.left > 0 {
        line += &format!("; {} not started", p.left);
    }
    if let Some(n) = p.logins_left_estimate().filter(|&n| n > 0) {
        line += &format!("; about {n} logins to come");
    }
    line
}

fn print_table(
    url: &str,
    depth: QueueDepth,
    dead_letter: Option<(String, QueueDepth)>,
    db: &DbStatus,
) {
    let line = |d: QueueDepth| {
        format!(
            "{} visible, {} in flight, {} delayed",
            d.visible, d.in_flight, d.delayed
        )
    };
    println!("queue {url}: {}", line(depth));
    if let Some((url, d)) = dead_letter {
        println!("dead-letter queue {url}: {}", line(d));
    }
    println!("user_logins: {} rows", db.rows);
    let by_code: Vec<String> = db
        .quarantined_by_code
        .iter()
        .map(|(code, n)| format!("{code}: {n}"))
        .collect();
    let quarantined: i64 = db.quarantined_by_code.values().sum();
    let detail = if by_code.is_empty() {
        String::new()
    } else {
        format!(" ({})", by_code.join(", "))
    };
    println!(
        "quarantined_messages: {quarantined}{detail}, {} resolved (landed after a redrive)",
        db.quarantine_resolved
    );
    println!("processed_messages: {} message ids", db.processed);
    let last = db.last_commit.map_or("never".into(), |t| t.to_rfc3339());
    println!("last committed batch: {last}");
    println!(
        "schema version: {}",
        db.schema_version.map_or("none".into(), |v| v.to_string())
    );
    let keys: Vec<String> = db
        .key_ids
        .iter()
        .map(|(id, n)| format!("{id}: {n} rows"))
        .collect();
    println!(
        "masking key ids in user_logins: {}",
        if keys.is_empty() {
            "none yet".into()
        } else {
            keys.join(", ")
        }
    );
    let fields: Vec<String> = db
        .unknown_fields
        .iter()
        .map(|(name, first)| format!("{} (since {})", escape(name), first.format("%Y-%m-%d")))
        .collect();
    println!(
        "unknown fields sent by producers: {}",
        if fields.is_empty() {
            "none".into()
        } else {
            fields.join(", ")
        }
    );
}
