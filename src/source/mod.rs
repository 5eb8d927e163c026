//! Where messages come from. Only this module knows SQS and S3.

pub mod s3;
pub mod sqs;

pub use sqs::{
    ChunkOf, Envelope, ForwardReport, Forwarded, MessageId, QueueDepth, ReceiptHandle, Redriven,
    SourceError, SqsProtocol, SqsSettings, SqsSource,
};
