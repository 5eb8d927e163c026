//! One long-polling receiver: receive, hand the messages to the batcher, repeat until told to
//! stop (or, when draining, until a receive comes back empty).

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
use crate::source::{Envelope, SourceError};

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
    loop {
        let received = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(()),
            r = source.receive(SQS_BATCH_MAX, wait) => r,
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
                for message in messages {
                    // An S3 notification is read here: its objects' chunks go down the channel.
                    match notification::parse_maybe_in_sns(&message.body) {
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
