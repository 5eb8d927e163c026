//! Where messages come from. Only this module knows SQS.

pub mod sqs;

pub(crate) use sqs::Forwarded;
pub use sqs::{
    Envelope, MessageId, QueueDepth, ReceiptHandle, SourceError, SqsProtocol, SqsSettings,
    SqsSource,
};
