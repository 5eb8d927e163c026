//! `login-etl quarantine list|show`: what went to quarantine and why, without writing SQL.

use anyhow::{bail, Context};

use crate::cli::{QuarantineCommand, QuarantineListArgs, QuarantineShowArgs, ReportFormat};
use crate::sink::{PgSink, QuarantineEntry};

pub(super) async fn quarantine(command: QuarantineCommand) -> anyhow::Result<()> {
    match command {
        QuarantineCommand::List(args) => list(args).await,
        QuarantineCommand::Show(args) => show(args).await,
    }
}

async fn list(args: QuarantineListArgs) -> anyhow::Result<()> {
    let mut sink = PgSink::new(args.db.database_url.expose())?;
    let entries = sink
        .quarantine_entries(args.reason.as_deref(), args.since, args.limit)
        .await
        .with_context(|| format!("cannot read quarantined_messages in {}", sink.target()))?;
    match args.format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
        ReportFormat::Csv => {
            println!("message_id,reason_code,received_at,receive_count,body_bytes,reason");
            for e in &entries {
                println!(
                    "{},{},{},{},{},\"{}\"",
                    e.message_id,
                    e.reason_code,
                    e.received_at.to_rfc3339(),
                    e.receive_count,
                    e.body_bytes,
                    e.reason.replace('"', "\"\"")
                );
            }
        }
        ReportFormat::Table => {
            println!("{} quarantined messages (newest first)", entries.len());
            for e in &entries {
                println!(
                    "{}  {}  {}  {}",
                    e.received_at.format("%Y-%m-%d %H:%M:%S"),
                    e.message_id,
                    e.reason_code,
                    e.reason
                );
                println!(
                    "    body: {}",
                    e.body_masked
                        .as_deref()
                        .unwrap_or("(not a JSON object: not kept)")
                );
            }
        }
    }
    Ok(())
}

async fn show(args: QuarantineShowArgs) -> anyhow::Result<()> {
    let mut sink = PgSink::new(args.db.database_url.expose())?;
    let Some(e): Option<QuarantineEntry> = sink
        .quarantine_entry(&args.message_id)
        .await
        .with_context(|| format!("cannot read quarantined_messages in {}", sink.target()))?
    else {
        bail!("no quarantined message with id `{}`", args.message_id);
    };
    println!("message_id:    {}", e.message_id);
    println!("reason_code:   {}", e.reason_code);
    println!("reason:        {}", e.reason);
    println!("received_at:   {}", e.received_at.to_rfc3339());
    println!("sent_at:       {}", e.sent_at.to_rfc3339());
    println!("receive_count: {}", e.receive_count);
    println!("body_bytes:    {}", e.body_bytes);
    println!(
        "body_masked:   {}",
        e.body_masked
            .as_deref()
            .unwrap_or("(not a JSON object: not kept)")
    );
    Ok(())
}
