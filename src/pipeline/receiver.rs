//! One long-polling receiver: receive, hand the messages to the batcher, repeat until told to
//! stop (or, when draining, until a receive comes back empty).

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::batcher::Buffer;
use super::held::Held;
use super::objects::{Parents, Reader};
use super::source::Source;
use crate::retry::{Budget, Retry};
use crate::source::s3::notification::{self, Notification};
use crate::source::sqs::SQS_BATCH_MAX;
use crate::source::{Envelope, MessageId, SourceError};

#[allow(clippy::too_many_arguments)]
pub(super) async fn receive_loop<Q: Source>(
    id: usize,
    source: Q,
    tx: mpsc::Sender<Envelope>,
    buffer: Buffer,
    held: Held,
    parents: Parents,
    max_receives: u32,
    wait_time: Duration,
    drain_idle: Option<Duration>,
    stop: CancellationToken,
) -> Result<(), SourceError> {
    let wait = drain_idle.unwrap_or(wait_time);
    // Retried until stopped: an SQS outage pauses consumption, it doesn't end it.
    let mut retry = Retry::new("receive", "receive failed", Budget::Forever, &stop);
    // While S3 notifications arrive, one at a time: an object takes long to read, and what this
    // receiver takes it reads in turn while other consumers may have nothing to do.
    let mut take = SQS_BATCH_MAX;
    // Not when draining: a notification handed back could miss the receive that ends the drain
    // (LocalStack's long poll does not wake for it), and left on the queue.
    let mut handed_back = drain_idle.is_none().then(HandedBack::default);
    loop {
        let received = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(()),
            r = source.receive(take, wait) => r,
        };
        match received {
            Ok(messages) if messages.is_empty() => {
                retry.succeeded();
                if drain_idle.is_some() {
                    tracing::debug!(receiver = id, "queue empty, receiver done");
                    return Ok(());
                }
            }
            Ok(messages) => {
                retry.succeeded();
                crate::telemetry::metrics::received(messages.len());
                let (messages, kinds) =
                    share_notifications(&source, messages, handed_back.as_mut()).await;
                let notified = kinds.iter().any(|k| matches!(k, Notification::Objects(_)));
                take = if notified { 1 } else { SQS_BATCH_MAX };
                // Kept invisible from now until deleted. (If the writer is gone, the run is
                // ending and the heartbeat with it: what was held comes back after a timeout.)
                held.hold(&messages, source.visibility_timeout());
                let objects = Reader {
                    source: &source,
                    tx: &tx,
                    buffer: &buffer,
                    held: &held,
                    parents: &parents,
                    stop: &stop,
                    max_receives,
                };
                for (message, kind) in messages.into_iter().zip(kinds) {
                    // An S3 notification is read here: its objects' chunks go down the channel.
                    match kind {
                        Notification::NotS3 => {}
                        Notification::Test => {
                            objects.delete(message.receipt_handle).await;
                            continue;
                        }
                        Notification::Objects(named) => {
                            if objects.read(message, named).await.is_err() {
                                return Ok(()); // the writer is gone
                            }
                            continue;
                        }
                    }
                    tokio::select! {
                        biased;
                        _ = buffer.reserve(message.body.len()) => {}
                        _ = tx.closed() => return Ok(()), // the writer is gone
                    }
                    if tx.send(message).await.is_err() {
                        return Ok(()); // the writer is gone (it failed); its error is reported
                    }
                }
                #[cfg(feature = "test-hooks")]
                crate::test_hooks::after_receive();
            }
            Err(e) => match retry.after(e).await {
                Ok(()) => {}
                Err(e) if stop.is_cancelled() => {
                    tracing::debug!(receiver = id, error = %e, "stopped while retrying");
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!(receiver = id, error = %e, "cannot receive from SQS");
                    return Err(e);
                }
            },
        }
    }
}

/// The notifications a receiver handed back, so it keeps them if they come to it again (a queue
/// that does not count receives says 1 every time). Bounded: forgotten past 10,000.
#[derive(Default)]
struct HandedBack(HashSet<MessageId>);

/// Sort out the S3 notifications of a receive. The first is kept; the others, seen for the first
/// time, go back to the queue at once for other consumers (each at most once, so no receive
/// count climbs towards the redrive policy's); a notification seen before is kept, so none goes
/// round for ever. Returns what is kept, with what each message is (all of it without
/// `handed_back`).
async fn share_notifications<Q: Source>(
    source: &Q,
    messages: Vec<Envelope>,
    mut handed_back: Option<&mut HandedBack>,
) -> (Vec<Envelope>, Vec<Notification>) {
    let mut kept = (Vec::with_capacity(messages.len()), Vec::new());
    let mut returned = Vec::new();
    let mut first = true;
    for message in messages {
        let kind = notification::parse_maybe_in_sns(&message.body);
        if matches!(kind, Notification::Objects(_)) {
            if let Some(back) = handed_back.as_deref_mut() {
                let seen = message.receive_count > 1 || back.0.contains(&message.message_id);
                if !first && !seen {
                    if back.0.len() >= 10_000 {
                        back.0.clear();
                    }
                    back.0.insert(message.message_id);
                    returned.push(message.receipt_handle);
                    continue;
                }
            }
            first = false;
        }
        kept.0.push(message);
        kept.1.push(kind);
    }
    if !returned.is_empty() {
        // If this fails they come back after their visibility timeout instead: nothing is lost.
        if let Err(e) = source.extend_visibility(&returned, Duration::ZERO).await {
            tracing::debug!(error = %e, "could not hand S3 notifications back at once");
        }
    }
    kept
}
