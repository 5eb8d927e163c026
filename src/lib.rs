//! login-etl: read user-login events from SQS, validate them, mask their PII, write them to
//! PostgreSQL.
//!
//! The data path runs one way: [`source`] (SQS) → [`transform`] ([`envelope`]s off, the body
//! split into [`logins`], each one [`validate`]d and [`mask`]ed) → [`sink`] (PostgreSQL, one
//! transaction per batch) → acknowledgement back to [`source`]. The [`pipeline`] wires these
//! together and owns batching, retries and shutdown; [`commands`] are the subcommands the binary
//! dispatches to. `docs/architecture.md` has the map.
//!
//! The public surface is what the binary, the integration tests, the benchmark and the fuzz
//! target use; everything else is `pub(crate)`.
#![warn(missing_docs, unreachable_pub)]

mod aws;
mod background;
pub mod cli;
pub mod commands;
pub mod envelope;
pub mod logins;
pub mod mask;
pub mod message;
#[cfg(feature = "sim-mutants")]
mod mutants;
pub mod pipeline;
pub mod policy;
mod retry;
pub mod safe_text;
pub mod sample;
#[cfg(test)]
mod sim;
pub mod sink;
pub mod source;
mod telemetry;
#[cfg(feature = "test-hooks")]
mod test_hooks;
pub mod transform;
pub mod validate;

/// The git commit this binary was built from (12 hex digits; "unknown" outside a checkout),
/// baked in by build.rs.
pub const GIT_COMMIT: &str = env!("LOGIN_ETL_GIT_COMMIT");

/// What `--version` prints: the crate version and the commit.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LOGIN_ETL_GIT_COMMIT"),
    ")"
);
