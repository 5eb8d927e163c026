//! Where messages come from. Only this module knows SQS.

pub mod sqs;

pub use sqs::{
    Envelope, ForwardReport, Forwarded, MessageId, QueueDepth, ReceiptHandle, SourceError,
    SqsProtocol, SqsSettings, SqsSource,
};
