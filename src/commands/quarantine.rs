//! `login-etl quarantine list|show`: what went to quarantine and why, without writing SQL.

use anyhow::{bail, Context};

use crate::cli::{QuarantineCommand, QuarantineListArgs, QuarantineShowArgs, ReportFormat};
use crate::safe_text::{escape, escape_json};
use crate::sink::QuarantineEntry;

pub(super) async fn quarantine(command: QuarantineCommand) -> anyhow::Result<()> {
    match command {
        QuarantineCommand::List(args) => list(args).await,
        QuarantineCommand::Show(args) => show(args).await,
    }
}

async fn list(args: QuarantineListArgs) -> anyhow::Result<()> {
    let mut sink = args.db.sink()?;
    let entries = sink
        .quarantine_entries(args.reason.as_deref(), args.since, args.limit)
        .await
        .with_context(|| format!("cannot read quarantined_messages in {}", sink.target()))?;
    match args.format {
        ReportFormat::Json => println!("{}", escape_json(&serde_json::to_string_pretty(&entries)?)),
        ReportFormat::Csv => {
            println!("message_id,reason_code,received_at,receive_count,body_bytes,reason");
            for e in &entries {
                println!(
                    "{},{},{},{},{},\"{}\"",
                    escape(&e.message_id),
                    escape(&e.reason_code),
                    e.received_at.to_rfc3339(),
                    e.receive_count,
                    e.body_bytes,
                    escape(&e.reason).replace('"', "\"\"")
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
                println!("    body: {}", body(e));
            }
        }
    }
    Ok(())
}

async fn show(args: QuarantineShowArgs) -> anyhow::Result<()> {
    let mut sink = args.db.sink()?;
    let Some(e): Option<QuarantineEntry> = sink
        .quarantine_entry(&args.message_id)
        .await
        .with_context(|| format!("cannot read quarantined_messages in {}", sink.target()))?
    else {
        bail!(
            "no quarantined message with id `{}`",
            escape(&args.message_id)
        );
    };
    println!("message_id:    {}", escape(&e.message_id));
    println!("reason_code:   {}", escape(&e.reason_code));
    println!("reason:        {}", escape(&e.reason));
    println!("received_at:   {}", e.received_at.to_rfc3339());
    println!("sent_at:       {}", e.sent_at.to_rfc3339());
    println!("receive_count: {}", e.receive_count);
    println!("body_bytes:    {}", e.body_bytes);
    println!("body_masked:   {}", body(&e));
    Ok(())
}

/// The stored body for a terminal (entries from before 0.2 may have none).
fn body(e: &QuarantineEntry) -> String {
    match &e.body_masked {
        Some(body) => escape(body).into_owned(),
        None => "(not a JSON object: not kept)".into(),
    }
}
