//! `login-etl backfill s3://bucket/prefix`: history in S3 loaded by the consumers already running.
//! Lists the objects under the prefix (with `--since`/`--until` on LastModified) and puts one
//! notification per object on the run's queue, shaped as S3 sends one; each consumer then reads
//! the objects it receives, streamed, every login landing once (`src/pipeline/objects.rs`). A
//! second backfill of the same objects adds nothing: the same content has the same chunk ids, and
//! objects read to their end already are not enqueued again. Each object is registered in
//! `s3_objects` (by the hash of its key), where `status` and `--wait` follow the consumers.

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;

use std::collections::HashSet;

use indicatif::{ProgressBar, ProgressStyle};

use super::Globals;
use crate::cli::{DbArgs, SqsArgs};
use crate::sink::{ObjectToRegister, PgOperator};
use crate::source::s3::{notification_of, object_id, Location, ObjectStore};
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
    #[arg(long, conflicts_with = "wait")]
    pub dry_run: bool,
    /// After enqueuing, show the consumers' progress until every object is read (Ctrl-C stops
    /// waiting, not the backfill).
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sqs: SqsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
}

/// After this long with nothing read, `--wait` asks whether a consumer runs.
const IDLE_HINT: std::time::Duration = std::time::Duration::from_secs(60);

/// How often `--wait` reads the progress.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_secs(1);

impl BackfillArgs {
    /// Whether an object written at `t` is in --since/--until (an object without a time only
    /// when neither is given).
    fn in_window(&self, t: Option<DateTime<Utc>>) -> bool {
        match t {
            Some(t) => self.since.map_or(true, |s| t >= s) && self.until.map_or(true, |u| t < u),
            None => self.since.is_none() && self.until.is_none(),
        }
    }
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
    let mut database = PgOperator::new(&args.db.settings())?;
    database.require_current_schema().await?;
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
    let location = &args.location;
    let backfill = match args.dry_run {
        true => None,
        false => Some(
            (database.start_backfill(&location.bucket, &location.prefix, args.since, args.until))
                .await?,
        ),
    };
    let mut tally = Tally::default();
    let mut token = None;
    loop {
        let (page, next) = (store.list_page(location, token).await)
            .with_context(|| format!("cannot list s3://{}/{}", location.bucket, location.prefix))?;
        let chosen: Vec<_> = (page.into_iter())
            .filter(|l| args.in_window(l.last_modified))
            .collect();
        let (empty, chosen): (Vec<_>, Vec<_>) =
            chosen.into_iter().partition(|l| l.object.size == Some(0));
        tally.empty += empty.len() as u64;
        let ids: Vec<String> = chosen.iter().map(|l| object_id(&l.object)).collect();
        let register: Vec<ObjectToRegister<'_>> = (chosen.iter().zip(&ids))
            .map(|(l, id)| ObjectToRegister {
                object_id: id,
                bucket: &l.object.bucket,
                size: l.object.size,
                last_modified: l.last_modified,
            })
            .collect();
        let read: HashSet<String> = match backfill {
            Some(id) => database.register_objects(id, &register).await?,
            None => database.objects_read(&ids).await?,
        }
        .into_iter()
        .collect();
        let (read, new): (Vec<_>, Vec<_>) =
            (chosen.iter().zip(&ids)).partition(|(_, id)| read.contains(*id));
        tally.read += read.len() as u64;
        tally.objects += new.len() as u64;
        tally.bytes += new.iter().filter_map(|(l, _)| l.object.size).sum::<u64>();
        if let Some(queue) = &queue {
            let bodies: Vec<String> = new
                .iter()
                .map(|(l, _)| notification_of(&l.object))
                .collect();
            queue.send(&bodies).await.context("enqueuing the notifications failed (the ones sent are read; running backfill again adds nothing twice)")?;
        }
        token = next;
        if token.is_none() {
            break;
        }
    }
    let place = format!("s3://{}/{}", location.bucket, location.prefix);
    let place = crate::safe_text::escape(&place);
    let Tally {
        objects,
        bytes,
        read,
        empty,
    } = tally;
    let skipped: Vec<String> = [(read, "read already"), (empty, "empty")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, why)| format!("{n} {why}"))
        .collect();
    let skipped = match skipped.is_empty() {
        true => String::new(),
        false => format!(" (skipped: {})", skipped.join(", ")),
    };
    match (&queue, backfill) {
        (Some(queue), Some(id)) => println!(
            "backfill {id}: enqueued {objects} objects ({bytes} bytes) from {place}{skipped} on {}; `login-etl status` shows progress",
            queue.queue_url()
        ),
        _ => println!("would enqueue {objects} objects ({bytes} bytes) from {place}{skipped}"),
    }
    if let (true, Some(id)) = (args.wait, backfill) {
        wait(&mut database, id).await?;
    }
    Ok(())
}

/// What a backfill listed.
#[derive(Default)]
struct Tally {
    objects: u64,
    bytes: u64,
    /// Read to their end before: not enqueued again.
    read: u64,
    /// 0 bytes: nothing to read.
    empty: u64,
}

/// Show a bar of the backfill's objects until they are all read (Ctrl-C leaves it running).
async fn wait(database: &mut PgOperator, id: i64) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} objects  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut last_seen, mut changed, mut hinted) = (None, std::time::Instant::now(), false);
    let progress = loop {
        let Some(backfill) = database.backfills(Some(id), 1).await?.pop() else {
            anyhow::bail!("backfill {id} is not in s3_backfills any more");
        };
        let p = backfill.progress;
        let seen = (p.done, p.done_logins + p.in_flight_logins);
        if last_seen != Some(seen) {
            (last_seen, changed) = (Some(seen), std::time::Instant::now());
        } else if !hinted && changed.elapsed() >= IDLE_HINT {
            hinted = true;
            bar.println(format!(
                "nothing read for {} s: is a consumer (`login-etl run`) reading the queue?",
                IDLE_HINT.as_secs()
            ));
        }
        bar.set_length(p.objects as u64);
        bar.set_position(p.done as u64);
        let left = p
            .logins_left_estimate()
            .map_or(String::new(), |n| format!(", about {n} to come"));
        bar.set_message(format!(
            "{} logins read, {} objects in flight{left}",
            p.done_logins + p.in_flight_logins,
            p.in_flight
        ));
        if p.finished() {
            break p;
        }
        tokio::select! {
            _ = tokio::time::sleep(WAIT_POLL) => {}
            _ = tokio::signal::ctrl_c() => {
                bar.abandon();
                println!("stopped waiting; backfill {id} goes on (`login-etl status` shows it)");
                return Ok(());
            }
        }
    };
    bar.finish_and_clear();
    println!(
        "backfill {id}: {} objects read, {} logins (rows and quarantine entries), in {:.1} s",
        progress.done,
        progress.done_logins,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
