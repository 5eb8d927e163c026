//! `login-etl backfill s3://bucket/prefix`: history in S3 loaded by the consumers already running.
//! Lists the objects under the prefix (with `--since`/`--until` on LastModified) and puts one
//! notification per object on the run's queue, shaped as S3 sends one; each consumer then reads
//! the objects it receives, streamed, every login landing once (`src/pipeline/objects.rs`). A
//! second backfill of the same objects adds nothing: the same content has the same chunk ids.

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;

use super::Globals;
use crate::cli::SqsArgs;
use crate::source::s3::{notification_of, Location, ObjectStore};
use crate::source::{SqsSettings, SqsSource};

/// `backfill` options.
#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    /// Where the history is: s3://bucket/prefix (every object under the prefix; NDJSON or a JSON
    /// array, plain or gzip).
    pub location: Location,
    /// Only objects written at or after this time (RFC 3339, or a UTC date: 2026-01-31).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Only objects written before this time (RFC 3339, or a UTC date).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// Count the objects and their bytes; enqueue nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sqs: SqsArgs,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(d) => Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()),
        Err(_) => {
            Err("expected an RFC 3339 time (2026-01-31T12:00:00Z) or a date (2026-01-31)".into())
        }
    }
}

pub(super) async fn execute(args: BackfillArgs, _: Globals) -> anyhow::Result<()> {
    if let (Some(since), Some(until)) = (args.since, args.until) {
        anyhow::ensure!(
            since < until,
            "--since ({since}) must be before --until ({until})"
        );
    }
    let settings = SqsSettings::from(&args.sqs);
    let queue = match args.dry_run {
        true => None,
        false => Some(
            SqsSource::connect(&settings)
                .await
                .context("cannot open the queue")?,
        ),
    };
    let s3_endpoint = settings.s3_endpoint.as_ref().or(settings.endpoint.as_ref());
    let store = ObjectStore::new(s3_endpoint, settings.region.as_deref()).await;
    let in_window = |t: Option<DateTime<Utc>>| match t {
        Some(t) => args.since.map_or(true, |s| t >= s) && args.until.map_or(true, |u| t < u),
        None => args.since.is_none() && args.until.is_none(),
    };
    let (mut objects, mut bytes, mut token) = (0u64, 0u64, None);
    loop {
        let (page, next) = (store.list_page(&args.location, token).await).with_context(|| {
            format!(
                "cannot list s3://{}/{}",
                args.location.bucket, args.location.prefix
            )
        })?;
        let chosen: Vec<_> = page
            .into_iter()
            .filter(|l| in_window(l.last_modified))
            .collect();
        objects += chosen.len() as u64;
        bytes += chosen.iter().filter_map(|l| l.object.size).sum::<u64>();
        if let Some(queue) = &queue {
            let bodies: Vec<String> = chosen.iter().map(|l| notification_of(&l.object)).collect();
            queue.send(&bodies).await.context("enqueuing the notifications failed (the ones sent are read; running backfill again adds nothing twice)")?;
        }
        token = next;
        if token.is_none() {
            break;
        }
    }
    let place = format!("s3://{}/{}", args.location.bucket, args.location.prefix);
    let place = crate::safe_text::escape(&place);
    match &queue {
        None => println!("would enqueue {objects} objects ({bytes} bytes) from {place}"),
        Some(queue) => println!(
            "enqueued {objects} objects ({bytes} bytes) from {place} on {}; every consumer of the queue reads them",
            queue.queue_url()
        ),
    }
    Ok(())
}
