//! Where the pipeline's messages come from, as a trait: receivers, the acknowledger, the heartbeat
//! and dead-letter forwarding call these methods and nothing else of a queue. [`SqsSource`] is the
//! production implementation (its methods, on the hot path, unchanged); the deterministic
//! simulation (`src/sim/`) is another. Futures are `Send` because receivers are spawned tasks.

use std::future::Future;
use std::time::Duration;

use crate::source::s3::{FetchError, ObjectRef, Opened};
use crate::source::{
    Envelope, ForwardReport, Forwarded, QueueDepth, ReceiptHandle, SourceError, SqsSource,
};

/// A queue of messages with per-delivery receipts and a visibility timeout (SQS's model).
pub trait Source: Clone + Send + Sync + 'static {
    /// Long-poll for up to `max` messages, waiting up to `wait` for the first.
    fn receive(
        &self,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Envelope>, SourceError>> + Send;
    /// Delete by receipt handle; how many the queue refused (they come back and are skipped).
    fn delete(
        &self,
        receipts: &[ReceiptHandle],
    ) -> impl Future<Output = Result<usize, SourceError>> + Send;
    /// Keep these deliveries invisible for another `timeout` from now; how many were refused.
    fn extend_visibility(
        &self,
        receipts: &[ReceiptHandle],
        timeout: Duration,
    ) -> impl Future<Output = Result<usize, SourceError>> + Send;
    /// How long a received message stays invisible.
    fn visibility_timeout(&self) -> Duration;
    /// Send rejected messages, raw, to this (dead-letter) queue.
    fn forward(
        &self,
        messages: &[Forwarded<'_>],
    ) -> impl Future<Output = Result<ForwardReport, SourceError>> + Send;
    /// A handle on another queue reached the same way (the dead-letter queue).
    fn sibling(&self, queue_url: &str) -> impl Future<Output = Result<Self, SourceError>> + Send;
    /// Approximate depth (the progress bar's length).
    fn depth(&self) -> impl Future<Output = Result<QueueDepth, SourceError>> + Send;
    /// Open an object an S3 notification on the queue named.
    fn open_object(
        &self,
        object: &ObjectRef,
    ) -> impl Future<Output = Result<Opened, FetchError>> + Send;
}

impl Source for SqsSource {
    fn receive(
        &self,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Envelope>, SourceError>> + Send {
        SqsSource::receive(self, max, wait)
    }

    fn delete(
        &self,
        receipts: &[ReceiptHandle],
    ) -> impl Future<Output = Result<usize, SourceError>> + Send {
        SqsSource::delete(self, receipts)
    }

    fn extend_visibility(
        &self,
        receipts: &[ReceiptHandle],
        timeout: Duration,
    ) -> impl Future<Output = Result<usize, SourceError>> + Send {
        SqsSource::extend_visibility(self, receipts, timeout)
    }

    fn visibility_timeout(&self) -> Duration {
        SqsSource::visibility_timeout(self)
    }

    fn forward(
        &self,
        messages: &[Forwarded<'_>],
    ) -> impl Future<Output = Result<ForwardReport, SourceError>> + Send {
        SqsSource::forward(self, messages)
    }

    fn sibling(&self, queue_url: &str) -> impl Future<Output = Result<Self, SourceError>> + Send {
        SqsSource::sibling(self, queue_url)
    }

    fn depth(&self) -> impl Future<Output = Result<QueueDepth, SourceError>> + Send {
        SqsSource::depth(self)
    }

    fn open_object(
        &self,
        object: &ObjectRef,
    ) -> impl Future<Output = Result<Opened, FetchError>> + Send {
        let (objects, object) = (self.objects().clone(), object.clone());
        async move { objects.open(&object).await }
    }
}
