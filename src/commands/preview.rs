//! `login-etl preview FILE.jsonl`: what each login of a file would become under the policy, one
//! JSON line each, nothing written anywhere.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::{json, Map, Value};

use super::policy::load_policy;
use super::{load_keys, Globals};
use crate::cli::{KeyArgs, PolicyFileArgs};
use crate::policy::Applier;

/// `preview` options.
#[derive(Debug, Clone, Args)]
pub struct PreviewArgs {
    /// Logins, one JSON object per line (`-` reads stdin).
    pub file: PathBuf,
    /// The time the logins count as sent (RFC 3339): what time-scoped pseudonyms and truncated
    /// times follow. Default: now.
    #[arg(long)]
    pub sent_at: Option<DateTime<Utc>>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub policy: PolicyFileArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: KeyArgs,
}

pub(super) async fn execute(args: PreviewArgs, _: Globals) -> anyhow::Result<()> {
    let policy = load_policy(&args.policy)?;
    let keys = load_keys(&args.keys, None).await?;
    let fingerprint = policy.fingerprint();
    let applier = Applier::new(policy, keys);
    let name = args.file.display().to_string();
    let input: Box<dyn BufRead> = match name.as_str() {
        "-" => Box::new(std::io::stdin().lock()),
        _ => Box::new(std::io::BufReader::new(
            std::fs::File::open(&args.file).with_context(|| format!("cannot open {name}"))?,
        )),
    };
    let sent_at = args.sent_at.unwrap_or_else(Utc::now);
    let create_date = Utc::now().date_naive();
    let (mut logins, mut refused) = (0u64, 0u64);
    let mut stdout = std::io::stdout().lock();
    for (n, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {name} at line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut out = Map::new();
        out.insert("line".into(), json!(n + 1));
        match crate::validate::decode(&line) {
            Ok(event) => {
                let stored = applier.apply(&event, sent_at, create_date)?;
                if let Some(period) = stored.period {
                    out.insert("period".into(), json!(period));
                }
                let columns: Map<String, Value> = (stored.columns.into_iter())
                    .map(|(column, value)| (column.to_string(), json!(value)))
                    .collect();
                out.insert("row".into(), Value::Object(columns));
                logins += 1;
            }
            // Reasons name fields, never values.
            Err(rejection) => {
                out.insert("quarantined".into(), json!(rejection.to_string()));
                refused += 1;
            }
        }
        match writeln!(stdout, "{}", Value::Object(out)) {
            Ok(()) => {}
            // The reader had enough (`| head`): not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e).context("cannot write the preview"),
        }
    }
    eprintln!("preview of {name} under policy {fingerprint}: {logins} rows, {refused} quarantined; nothing written");
    Ok(())
}
