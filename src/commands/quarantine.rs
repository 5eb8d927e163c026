//! `login-etl quarantine list|show`: what went to quarantine and why, without writing SQL.

use super::Globals;
use crate::cli::{DbArgs, ReportFormat};
use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};

use crate::safe_text::{escape, escape_json};
use crate::sink::{PgOperator, QuarantineEntry};

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

pub(super) async fn execute(args: QuarantineArgs, _: Globals) -> anyhow::Result<()> {
    match args.command {
        QuarantineCommand::List(args) => list(args).await,
        QuarantineCommand::Show(args) => show(args).await,
    }
}

async fn list(args: QuarantineListArgs) -> anyhow::Result<()> {
    let mut database = PgOperator::new(&args.db.settings())?;
    let entries = database
        .quarantine_entries(args.reason.as_deref(), args.since, args.limit)
        .await
        .with_context(|| format!("cannot read quarantined_messages in {}", database.target()))?;
    match args.format {
        ReportFormat::Json => println!("{}", escape_json(&serde_json::to_string_pretty(&entries)?)),
        ReportFormat::Csv => {
            println!("message_id,element,reason_code,received_at,receive_count,body_bytes,reason,attempts,resolved_at");
            for e in &entries {
                println!(
                    "{},{},{},{},{},{},\"{}\",{},{}",
                    escape(&e.message_id),
                    e.element.map(|i| i.to_string()).unwrap_or_default(),
                    escape(&e.reason_code),
                    e.received_at.to_rfc3339(),
                    e.receive_count,
                    e.body_bytes,
                    escape(&e.reason).replace('"', "\"\""),
                    e.attempts,
                    e.resolved_at.map(|t| t.to_rfc3339()).unwrap_or_default()
                );
            }
        }
        ReportFormat::Table => {
            println!("{} quarantined messages (newest first)", entries.len());
            for e in &entries {
                println!(
                    "{}  {}  {}  {}",
                    e.received_at.format("%Y-%m-%d %H:%M:%S"),
                    escape(&e.message_id),
                    escape(&e.reason_code),
                    escape(&e.reason)
                );
                if e.attempts > 1 || e.resolved_at.is_some() {
                    println!("    attempts: {}, resolved: {}", e.attempts, resolved(e));
                }
                println!("    body: {}", body(e));
            }
        }
    }
    Ok(())
}

async fn show(args: QuarantineShowArgs) -> anyhow::Result<()> {
    let mut database = PgOperator::new(&args.db.settings())?;
    let entries: Vec<QuarantineEntry> = database
        .quarantine_entries_of(&args.message_id)
        .await
        .with_context(|| format!("cannot read quarantined_messages in {}", database.target()))?;
    if entries.is_empty() {
        bail!(
            "no quarantined message with id `{}`",
            escape(&args.message_id)
        );
    }
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print_entry(e);
    }
    Ok(())
}

fn print_entry(e: &QuarantineEntry) {
    println!("message_id:    {}", escape(&e.message_id));
    if let Some(element) = e.element {
        println!("element:       {element}");
    }
    println!("reason_code:   {}", escape(&e.reason_code));
    println!("reason:        {}", escape(&e.reason));
    println!("received_at:   {}", e.received_at.to_rfc3339());
    println!("sent_at:       {}", e.sent_at.to_rfc3339());
    println!("receive_count: {}", e.receive_count);
    println!("body_bytes:    {}", e.body_bytes);
    println!("body_masked:   {}", body(e));
    println!("attempts:      {}", e.attempts);
    println!("resolved_at:   {}", resolved(e));
}

/// When the entry's login landed after all, or `open`.
fn resolved(e: &QuarantineEntry) -> String {
    e.resolved_at.map_or("open".into(), |t| t.to_rfc3339())
}

/// The stored body for a terminal (entries from before 0.2 may have none).
fn body(e: &QuarantineEntry) -> String {
    match &e.body_masked {
        Some(body) => escape(body).into_owned(),
        None => "(not a JSON object: not kept)".into(),
    }
}
fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|date| date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        .map_err(|_| "expected 2026-11-26T08:00:00Z or 2026-11-26".to_string())
}
