//! Where messages come from. Only this module knows SQS.

pub mod sqs;

pub use sqs::{
    Envelope, ForwardReport, Forwarded, MessageId, QueueDepth, ReceiptHandle, Redriven,
    SourceError, SqsProtocol, SqsSettings, SqsSource,
};
