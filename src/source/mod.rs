//! Where messages come from. Only this module knows SQS.

pub mod sqs;

pub use sqs::{Envelope, Forwarded, QueueDepth, SourceError, SqsSettings, SqsSource};
