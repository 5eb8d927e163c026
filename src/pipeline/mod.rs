//! receive → batch → commit → acknowledge, with shutdown and retries.
//!
//! Several [receivers](receiver) long-poll SQS and push what they get into a bounded channel, so a
//! slow database slows receiving instead of filling memory. The [batcher](batcher) cuts batches
//! by size or age, whichever comes first; the [committer](committer) turns each into outcomes and
//! writes it in one transaction; the [acknowledger](acknowledger) deletes its messages after. Every
//! message held meanwhile (in a receiver, the channel, the batcher or the commit) is kept
//! invisible by one [heartbeat](held) until it is deleted. On shutdown the receivers stop, the batch in flight
//! is committed and acknowledged, and [`run`] returns. A receiver that fails for good (or panics)
//! stops the others the same way, and the run then returns its error.

mod acknowledger;
mod batcher;
mod committer;
mod held;
mod objects;
mod progress;
mod receiver;
mod source;
mod store;
mod summary;

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::mask::Masker;
use crate::sink::SinkError;
use crate::source::{Envelope, SourceError};
use crate::telemetry::{health, metrics};

pub use source::Source;
pub use store::Store;
pub use summary::Summary;

/// The default of each knob, written once: [`PipelineSettings::default`] and `run`'s flags both
/// read them.
pub mod defaults {
    /// Most messages per transaction.
    pub const BATCH_SIZE: u64 = 500;
    /// Longest a message waits for its batch to fill, in milliseconds.
    pub const BATCH_MAX_WAIT_MS: u64 = 1000;
    /// Concurrent long-polling receivers.
    pub const RECEIVERS: u64 = 4;
    /// Long-poll wait per receive, in seconds (the SQS maximum).
    pub const WAIT_TIME_SECONDS: u64 = 20;
    /// Failed solo attempts before a message counts as poison.
    pub const MAX_RECEIVES: u32 = 5;
    /// How long a failing batch write is retried, in seconds.
    pub const WRITE_RETRY_SECONDS: u64 = 300;
    /// Most message-body bytes per batch: 500 messages of SQS's 256 KiB would be 125 MiB.
    pub const BATCH_MAX_BYTES: usize = 8 << 20;
    /// Most message-body bytes waiting between the receivers and the batcher.
    pub const BUFFER_BYTES: usize = 16 << 20;
    /// Most logins per transaction: a batch of messages holding 1,000 logins each is committed
    /// in several transactions (each message whole in one), so memory stays flat.
    pub const LOGINS_PER_TRANSACTION: usize = 10_000;
}

/// Tuning knobs; see the CLI for what each one means to an operator.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Most messages per transaction.
    pub batch_size: usize,
    /// Longest a received message waits for its batch to fill.
    pub batch_max_wait: Duration,
    /// Concurrent long-polling receivers.
    pub receivers: usize,
    /// Long-poll wait per receive while consuming.
    pub wait_time: Duration,
    /// `Some(idle)`: stop once a receive waiting `idle` comes back empty.
    pub drain_idle: Option<Duration>,
    /// Deliveries after which a message is quarantined instead of retried.
    pub max_receives: u32,
    /// How long a failing batch write is retried before the run gives up (messages stay in SQS).
    pub write_retry_timeout: Duration,
    /// Where quarantined messages are also forwarded, raw, for redriving after a fix.
    pub dead_letter_queue: Option<String>,
    /// Show a progress bar on stderr (a terminal, `run --drain`) instead of periodic log lines.
    pub progress_bar: bool,
    /// Envelopes and compression taken off before validation.
    pub decoding: crate::envelope::Decoding,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            batch_size: defaults::BATCH_SIZE as usize,
            batch_max_wait: Duration::from_millis(defaults::BATCH_MAX_WAIT_MS),
            receivers: defaults::RECEIVERS as usize,
            wait_time: Duration::from_secs(defaults::WAIT_TIME_SECONDS),
            drain_idle: None,
            max_receives: defaults::MAX_RECEIVES,
            write_retry_timeout: Duration::from_secs(defaults::WRITE_RETRY_SECONDS),
            dead_letter_queue: None,
            progress_bar: false,
            decoding: crate::envelope::Decoding::default(),
        }
    }
}

/// Why a run stopped early. Messages of an unfinished batch are not deleted: SQS redelivers them.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// SQS failed in a way retrying can't fix.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// PostgreSQL failed in a way retrying can't fix, or for longer than the retry timeout.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A period key in the database cannot be opened with this key ring.
    #[error(transparent)]
    Keys(#[from] crate::mask::KeyError),
    /// A task of the pipeline panicked: a bug, reported instead of exiting 0 with work undone.
    #[error("a {task} task panicked (a bug; the panic message is above); its messages were not deleted and will be redelivered")]
    Panicked {
        /// Which kind of task.
        task: &'static str,
    },
}

/// Run until `shutdown` is cancelled or, in drain mode, until the queue stays empty.
pub async fn run<Q: Source, S: Store>(
    source: Q,
    sink: S,
    masker: Masker,
    settings: PipelineSettings,
    shutdown: CancellationToken,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    // Room for two full batches: receivers keep polling while a batch is written, but no further.
    let (tx, rx) = mpsc::channel::<Envelope>(2 * settings.batch_size.max(1));
    let buffer = batcher::Buffer::new(defaults::BUFFER_BYTES);
    let held = held::Held::default();
    let parents = objects::Parents::default();
    let stop_heartbeat = CancellationToken::new();
    let heartbeat = held::heartbeat(held.clone(), source.clone(), stop_heartbeat.clone());
    // Receivers stop on shutdown, on a fatal error of any task, or when the writer is done.
    let stop_receiving = shutdown.child_token();
    let mut receivers = JoinSet::new();
    for id in 0..settings.receivers.max(1) {
        receivers.spawn(receiver::receive_loop(
            id,
            source.clone(),
            tx.clone(),
            buffer.clone(),
            held.clone(),
            parents.clone(),
            settings.max_receives,
            settings.wait_time,
            settings.drain_idle,
            stop_receiving.clone(),
        ));
    }
    drop(tx);

    let dead_letter = match &settings.dead_letter_queue {
        Some(url) => Some(source.sibling(url).await?),
        None => None,
    };
    let mut committer =
        committer::Committer::new(sink, masker, dead_letter, &settings, shutdown.clone());
    // The bar's length: what the queue holds now (it grows if more arrives).
    let bar_total = match settings.progress_bar {
        true => Some(source.depth().await.map_or(0, |d| d.visible + d.in_flight)),
        false => None,
    };
    let mut acknowledger = acknowledger::Acknowledger::new(source, held, parents, shutdown.clone());
    let mut summary = Summary::default();
    let mut progress = progress::Progress::new(bar_total);
    let write = async {
        let limits = batcher::Limits {
            messages: settings.batch_size,
            bytes: defaults::BATCH_MAX_BYTES,
            max_wait: settings.batch_max_wait,
        };
        let batches = batcher::batches(rx, buffer, limits);
        tokio::pin!(batches);
        let result = async {
            while let Some(batch) = batches.next().await {
                let received = batch.len();
                let receipts = acknowledger::receipts(&batch);
                let sent: Vec<_> = batch.iter().map(|e| e.sent_at).collect();
                let commit_started = Instant::now();
                #[cfg(feature = "sim-mutants")]
                if crate::mutants::active(crate::mutants::Mutant::DeleteBeforeCommit) {
                    summary.delete_failures += acknowledger.delete(&receipts).await;
                }
                let report = committer.commit(batch).await?;
                let batch = metrics::Committed {
                    messages: received,
                    rows: report.rows,
                    duplicates: report.duplicates,
                    erased: report.erased,
                    quarantined_by_code: &report.quarantined_by_code,
                };
                metrics::committed(batch, commit_started.elapsed(), sent.into_iter());
                progress.committed(&report, received);
                summary.add(report, received);
                summary.busy = started.elapsed();
                summary.delete_failures += acknowledger.delete(&receipts).await;
                metrics::released(received);
            }
            Ok::<_, PipelineError>(())
        }
        .await;
        if let Err(e) = &result {
            health().task_failed(format!("the writer stopped: {e}"));
        }
        stop_receiving.cancel();
        stop_heartbeat.cancel();
        result
    };
    let (written, received, ()) =
        tokio::join!(write, supervise(&mut receivers, &stop_receiving), heartbeat);
    progress.finish();
    written?;
    if let Some(e) = received {
        return Err(e);
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Wait for every receiver. The first that fails for good, or panics, stops the others (so the
/// writer commits what it holds and ends); its error is returned.
async fn supervise(
    receivers: &mut JoinSet<Result<(), SourceError>>,
    stop_receiving: &CancellationToken,
) -> Option<PipelineError> {
    let mut first = None;
    while let Some(joined) = receivers.join_next().await {
        let error = match joined {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => PipelineError::Source(e),
            Err(e) => panicked("receiver", e),
        };
        health().task_failed(format!("a receiver stopped: {error}"));
        stop_receiving.cancel();
        first.get_or_insert(error);
    }
    first
}

fn panicked(task: &'static str, error: JoinError) -> PipelineError {
    tracing::error!(
        task,
        cancelled = error.is_cancelled(),
        "task ended abnormally; stopping"
    );
    PipelineError::Panicked { task }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_receiver_is_an_error_and_stops_the_others() {
        let stop = CancellationToken::new();
        let mut receivers = JoinSet::new();
        receivers.spawn(async { panic!("boom") });
        let other = stop.clone();
        receivers.spawn(async move {
            other.cancelled().await;
            Ok(())
        });
        let error = supervise(&mut receivers, &stop).await;
        assert!(matches!(
            error,
            Some(PipelineError::Panicked { task: "receiver" })
        ));
        assert!(stop.is_cancelled());
    }

    #[tokio::test]
    async fn receivers_that_end_normally_are_no_error() {
        let stop = CancellationToken::new();
        let mut receivers = JoinSet::new();
        receivers.spawn(async { Ok(()) });
        assert!(supervise(&mut receivers, &stop).await.is_none());
        assert!(!stop.is_cancelled());
    }
}
