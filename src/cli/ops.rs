//! Flags of the operator commands: `status`, `quarantine list/show`.

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};

use super::{DbArgs, ReportFormat, SqsArgs};

/// `status` options.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sqs: SqsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    /// The dead-letter queue's URL, to show its depth too.
    #[arg(long, env = "LOGIN_ETL_DEAD_LETTER_QUEUE")]
    pub dead_letter_queue: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: StatusFormat,
}

/// Output formats of `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// Lines for people.
    Table,
    /// One JSON document.
    Json,
}

/// `quarantine` subcommands.
#[derive(Debug, Clone, Args)]
pub struct QuarantineArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: QuarantineCommand,
}

/// List or show quarantined messages.
#[derive(Debug, Clone, Subcommand)]
pub enum QuarantineCommand {
    /// Quarantined messages, newest first: id, reason, when, masked body.
    List(QuarantineListArgs),
    /// One quarantined message, every stored field.
    Show(QuarantineShowArgs),
}

/// `quarantine list` options.
#[derive(Debug, Clone, Args)]
pub struct QuarantineListArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    /// Only this reason code (e.g. invalid_fields, invalid_json, too_many_receives).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only messages received at or after this time: RFC 3339 (2026-11-26T08:00:00Z) or a date.
    #[arg(long, value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// Most entries.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

/// `quarantine show` options.
#[derive(Debug, Clone, Args)]
pub struct QuarantineShowArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    /// The SQS MessageId.
    pub message_id: String,
}

fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|date| date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        .map_err(|_| "expected 2026-11-26T08:00:00Z or 2026-11-26".to_string())
}
