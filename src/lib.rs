#![warn(missing_docs)]
//! login-etl: read user-login events from SQS, validate them, mask their PII, write them to PostgreSQL.
//!
//! The data path runs one way: [`source`] (SQS) → [`transform`] ([`event`] decoding + [`mask`]ing) →
//! [`sink`] (PostgreSQL, one transaction per batch) → acknowledgement back to [`source`]. The
//! [`pipeline`] wires these together and owns batching, retries and shutdown.

pub mod app;
pub mod aws;
pub mod cli;
pub mod event;
pub mod kms;
pub mod mask;
pub mod pipeline;
pub mod retry;
pub mod sample;
pub mod sink;
pub mod source;
pub mod transform;
