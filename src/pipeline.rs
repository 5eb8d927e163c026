//! receive → transform → batch → write → acknowledge, with shutdown and retries.
//!
//! Several receiver tasks long-poll SQS and push what they get into a bounded channel (so a slow
//! database slows receiving instead of filling memory). One writer task cuts batches by size or age,
//! whichever comes first, writes each batch in one transaction and only then deletes its messages.
//! On shutdown the receivers stop, the writer commits and acknowledges what it holds, and `run` returns.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::event::{RejectCode, Rejection};
use crate::mask::Masker;
use crate::retry::Backoff;
use crate::sink::{PgSink, SinkError, WriteReport};
use crate::source::{Envelope, Forwarded, SourceError, SqsSource};
use crate::transform::{self, Outcome, OutcomeKind};

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
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            batch_max_wait: Duration::from_secs(1),
            receivers: 4,
            wait_time: Duration::from_secs(20),
            drain_idle: None,
            max_receives: 5,
            write_retry_timeout: Duration::from_secs(300),
            dead_letter_queue: None,
        }
    }
}

/// Totals for one run, printed by `run --drain`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Messages received from SQS (redeliveries included).
    pub received: u64,
    /// Rows committed to `user_logins`.
    pub written: u64,
    /// Entries committed to `quarantined_messages`.
    pub quarantined: u64,
    /// Redeliveries skipped because their id was already committed.
    pub duplicates: u64,
    /// Committed messages whose delete SQS refused (they come back and are skipped as duplicates).
    pub delete_failures: u64,
    /// Wall time of the run, including the final idle wait of `--drain`.
    pub elapsed: Duration,
    /// From the start to the last commit: the time actually spent moving messages.
    pub busy: Duration,
}

impl Summary {
    /// Received messages per second of busy time (the idle tail of a drain is not throughput).
    pub fn messages_per_second(&self) -> f64 {
        self.received as f64 / self.busy.as_secs_f64().max(1e-9)
    }

    fn add(&mut self, report: WriteReport, received: usize) {
        self.received += received as u64;
        self.written += report.rows;
        self.quarantined += report.quarantined;
        self.duplicates += report.duplicates;
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "received {}, written {}, quarantined {}, duplicates skipped {}, delete failures {}, \
             elapsed {:.2}s (busy {:.2}s), {:.0} messages/s",
            self.received,
            self.written,
            self.quarantined,
            self.duplicates,
            self.delete_failures,
            self.elapsed.as_secs_f64(),
            self.busy.as_secs_f64(),
            self.messages_per_second()
        )
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
}

/// Run until `shutdown` is cancelled or, in drain mode, until the queue stays empty.
pub async fn run(
    source: SqsSource,
    sink: PgSink,
    masker: Masker,
    settings: PipelineSettings,
    shutdown: CancellationToken,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    // Room for two full batches: receivers keep polling while a batch is written, but no further.
    let capacity = (2 * settings.batch_size)
        .div_ceil(crate::source::sqs::SQS_BATCH_MAX)
        .max(2);
    let (tx, rx) = mpsc::channel::<Vec<Envelope>>(capacity);
    // Receivers stop on shutdown or on a fatal writer error (`stop_receiving`).
    let stop_receiving = shutdown.child_token();

    let mut receivers = JoinSet::new();
    for id in 0..settings.receivers.max(1) {
        receivers.spawn(receive_loop(
            id,
            source.clone(),
            tx.clone(),
            settings.clone(),
            stop_receiving.clone(),
        ));
    }
    drop(tx);

    let dead_letter = match &settings.dead_letter_queue {
        Some(url) => Some(source.sibling(url).await?),
        None => None,
    };
    let mut writer = Writer {
        dead_letter,
        source,
        sink,
        masker,
        settings,
        summary: Summary::default(),
        started,
    };
    let written = writer.consume(rx).await;
    stop_receiving.cancel();

    let mut receive_error = None;
    while let Some(joined) = receivers.join_next().await {
        if let Ok(Err(e)) = joined {
            receive_error.get_or_insert(e);
        }
    }
    written?;
    if let Some(e) = receive_error {
        return Err(e.into());
    }
    writer.summary.elapsed = started.elapsed();
    Ok(writer.summary)
}

async fn receive_loop(
    id: usize,
    source: SqsSource,
    tx: mpsc::Sender<Vec<Envelope>>,
    settings: PipelineSettings,
    stop: CancellationToken,
) -> Result<(), SourceError> {
    let wait = settings.drain_idle.unwrap_or(settings.wait_time);
    let mut backoff = Backoff::default();
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = source.receive(crate::source::sqs::SQS_BATCH_MAX, wait) => r,
        };
        match received {
            Ok(messages) if messages.is_empty() => {
                backoff.reset();
                if settings.drain_idle.is_some() {
                    tracing::debug!(receiver = id, "queue empty, receiver done");
                    return Ok(());
                }
            }
            Ok(messages) => {
                backoff.reset();
                if tx.send(messages).await.is_err() {
                    return Ok(()); // writer is gone (it failed); its error is reported
                }
            }
            Err(e) if e.is_fatal() => {
                tracing::error!(receiver = id, error = %e, "cannot receive from SQS");
                stop.cancel();
                return Err(e);
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(receiver = id, error = %e, retry_in = ?delay, attempt = backoff.attempts(), "receive failed, retrying");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

struct Writer {
    source: SqsSource,
    sink: PgSink,
    masker: Masker,
    settings: PipelineSettings,
    summary: Summary,
    started: Instant,
    dead_letter: Option<SqsSource>,
}

impl Writer {
    /// Cut batches from the channel until every receiver has finished.
    async fn consume(
        &mut self,
        mut rx: mpsc::Receiver<Vec<Envelope>>,
    ) -> Result<(), PipelineError> {
        let mut batch: Vec<Envelope> = Vec::with_capacity(self.settings.batch_size);
        let mut deadline = tokio::time::Instant::now();
        loop {
            let flush_now = tokio::select! {
                received = rx.recv() => match received {
                    Some(messages) => {
                        if batch.is_empty() {
                            deadline = tokio::time::Instant::now() + self.settings.batch_max_wait;
                        }
                        batch.extend(messages);
                        batch.len() >= self.settings.batch_size
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline), if !batch.is_empty() => true,
            };
            if flush_now {
                self.flush(std::mem::take(&mut batch)).await?;
            }
        }
        if !batch.is_empty() {
            self.flush(batch).await?;
        }
        Ok(())
    }

    /// Transform, commit, then acknowledge one batch. While the commit takes long (slow or
    /// unreachable database), the batch's messages are kept invisible so SQS doesn't hand them to
    /// another consumer meanwhile.
    async fn flush(&mut self, batch: Vec<Envelope>) -> Result<(), PipelineError> {
        let received_at = Utc::now();
        let outcomes: Vec<Outcome> = batch
            .iter()
            .map(|e| transform::process(e, &self.masker, self.settings.max_receives, received_at))
            .collect();
        let receipts: Vec<String> = batch.iter().map(|e| e.receipt_handle.clone()).collect();
        let oldest = batch
            .iter()
            .map(|e| e.received)
            .min()
            .unwrap_or_else(Instant::now);
        let heartbeat = keep_invisible(self.source.clone(), receipts.clone(), oldest);

        let report = tokio::select! {
            biased;
            report = self.commit(outcomes, &batch) => report?,
            never = heartbeat => match never {},
        };
        tracing::debug!(
            messages = batch.len(),
            rows = report.rows,
            quarantined = report.quarantined,
            duplicates = report.duplicates,
            "batch committed"
        );
        self.summary.add(report, batch.len());
        self.summary.busy = self.started.elapsed();
        self.acknowledge(&receipts).await;
        Ok(())
    }

    /// Commit outcomes; if PostgreSQL rejects the data, split the batch until the offending
    /// messages are isolated, quarantine those, and commit everything else.
    async fn commit(
        &mut self,
        outcomes: Vec<Outcome>,
        batch: &[Envelope],
    ) -> Result<WriteReport, PipelineError> {
        let mut total = WriteReport::default();
        let mut forwarded = HashSet::new();
        let mut pending = vec![outcomes];
        while let Some(part) = pending.pop() {
            self.forward_quarantined(&part, batch, &mut forwarded)
                .await?;
            match self.write_with_retry(&part).await {
                Ok(report) => {
                    total.rows += report.rows;
                    total.quarantined += report.quarantined;
                    total.duplicates += report.duplicates;
                }
                Err(SinkError::Rejected { reason }) if part.len() > 1 => {
                    tracing::warn!(%reason, messages = part.len(), "PostgreSQL rejected part of a batch; splitting it to isolate the message");
                    let mut first = part;
                    let second = first.split_off(first.len() / 2);
                    pending.push(second);
                    pending.push(first);
                }
                Err(SinkError::Rejected { reason }) => {
                    let outcome = &part[0];
                    let envelope = batch
                        .iter()
                        .find(|e| e.message_id == outcome.message_id)
                        .expect("every outcome comes from the batch");
                    if matches!(outcome.kind, OutcomeKind::Quarantine(_)) {
                        // Even the quarantine entry is refused: the schema is broken, not the data.
                        return Err(SinkError::Rejected { reason }.into());
                    }
                    tracing::warn!(message_id = %outcome.message_id, %reason, "quarantining a row PostgreSQL rejected");
                    let rejection = Rejection::new(
                        RejectCode::RejectedByDatabase,
                        format!("PostgreSQL rejected the row: {reason}"),
                    );
                    pending.push(vec![transform::quarantine(
                        envelope,
                        &self.masker,
                        rejection,
                        Utc::now(),
                    )]);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(total)
    }

    /// With `--dead-letter-queue`: send the raw bodies of quarantined messages there *before* the
    /// commit, so a crash in between duplicates a dead letter rather than losing one.
    async fn forward_quarantined(
        &self,
        outcomes: &[Outcome],
        batch: &[Envelope],
        forwarded: &mut HashSet<String>,
    ) -> Result<(), PipelineError> {
        let Some(dead_letter) = &self.dead_letter else {
            return Ok(());
        };
        let messages: Vec<Forwarded> = outcomes
            .iter()
            .filter(|o| !forwarded.contains(&o.message_id))
            .filter_map(|o| match &o.kind {
                OutcomeKind::Quarantine(q) => batch
                    .iter()
                    .find(|e| e.message_id == o.message_id)
                    .map(|e| Forwarded {
                        body: &e.body,
                        message_id: &e.message_id,
                        reason_code: q.rejection.code.as_str(),
                    }),
                OutcomeKind::Row { .. } => None,
            })
            .collect();
        if messages.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let mut backoff = Backoff::default();
        loop {
            match dead_letter.forward(&messages).await {
                Ok(()) => break,
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) => {
                    let delay = backoff.next_delay();
                    if started.elapsed() + delay > self.settings.write_retry_timeout {
                        return Err(e.into());
                    }
                    tracing::warn!(error = %e, retry_in = ?delay, "forwarding to the dead-letter queue failed, retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        forwarded.extend(messages.iter().map(|m| m.message_id.to_string()));
        Ok(())
    }

    /// Retry transient failures (connection lost, server restarting) with backoff, reconnecting.
    async fn write_with_retry(&mut self, outcomes: &[Outcome]) -> Result<WriteReport, SinkError> {
        let started = Instant::now();
        let mut backoff = Backoff::default();
        loop {
            match self.sink.write_batch(outcomes).await {
                Err(e @ SinkError::Transient { .. }) => {
                    let delay = backoff.next_delay();
                    if started.elapsed() + delay > self.settings.write_retry_timeout {
                        tracing::error!(error = %e, attempts = backoff.attempts(), "giving up on the batch; its messages stay in SQS and will be redelivered");
                        return Err(e);
                    }
                    tracing::warn!(error = %e, retry_in = ?delay, attempt = backoff.attempts(), messages = outcomes.len(), "batch write failed, nothing deleted, retrying");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Delete committed messages. A failure here loses nothing: the message is redelivered and the
    /// ledger skips it, so errors are retried briefly and then only counted.
    async fn acknowledge(&mut self, receipts: &[String]) {
        let mut backoff = Backoff::default();
        for _ in 0..3 {
            match self.source.delete(receipts).await {
                Ok(failed) => {
                    if failed > 0 {
                        tracing::warn!(
                            failed,
                            "SQS refused some deletes; they will be redelivered and skipped"
                        );
                    }
                    self.summary.delete_failures += failed as u64;
                    return;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "delete failed, retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        tracing::warn!(
            messages = receipts.len(),
            "could not delete committed messages; they will be redelivered and skipped"
        );
        self.summary.delete_failures += receipts.len() as u64;
    }
}

/// Extend the visibility of a batch in flight every half visibility timeout, counted from its
/// oldest message's receipt. Never returns; dropped when the commit finishes.
async fn keep_invisible(source: SqsSource, receipts: Vec<String>, oldest: Instant) -> Infallible {
    let timeout = source.visibility_timeout();
    let every = (timeout / 2).max(Duration::from_millis(500));
    let mut next = oldest + every;
    loop {
        tokio::time::sleep_until(next.into()).await;
        match source.extend_visibility(&receipts, timeout).await {
            Ok(refused) => tracing::info!(
                messages = receipts.len(),
                refused,
                ?timeout,
                "batch still in flight: visibility extended"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not extend visibility; messages may be redelivered (the ledger skips them)")
            }
        }
        next = Instant::now() + every;
    }
}
