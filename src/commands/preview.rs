//! `login-etl preview FILE.jsonl`: what each login of a file would become under the policy, one
//! JSON line each, nothing written anywhere (`--from-queue`: `preview_queue.rs`).

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::{json, Map, Value};

use super::policy::load_policy;
use super::{load_keys, Globals};
use crate::cli::{KeyArgs, PolicyFileArgs, SqsArgs};
use crate::policy::{Applier, Stored};

/// `preview` options.
#[derive(Debug, Clone, Args)]
pub struct PreviewArgs {
    /// Logins, one JSON object per line (`-` reads stdin).
    #[arg(required_unless_present = "from_queue", conflicts_with = "from_queue")]
    pub file: Option<PathBuf>,
    /// Preview the next messages of the queue instead of a file, through the path `run` takes
    /// (envelopes, base64+gzip, arrays), with the default decoding. Nothing is deleted: each
    /// message is handed back at once, but its receive counts toward --max-receives and the
    /// queue's maxReceiveCount.
    #[arg(long)]
    pub from_queue: bool,
    /// With --from-queue: most messages to show.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub max_messages: u64,
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
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sqs: SqsArgs,
}

pub(super) async fn execute(args: PreviewArgs, _: Globals) -> anyhow::Result<()> {
    let policy = load_policy(&args.policy)?;
    let keys = load_keys(&args.keys, args.sqs.sqs_endpoint.0.as_ref()).await?;
    let fingerprint = policy.fingerprint();
    let applier = Applier::new(policy, keys.clone());
    applier.check_keys()?;
    let Some(file) = args.file.filter(|_| !args.from_queue) else {
        let applier = std::sync::Arc::new(applier);
        let masker = crate::mask::Masker::hmac(&keys).with_policy(applier.clone());
        let max = args.max_messages as usize;
        let settings = crate::source::SqsSettings::from(&args.sqs);
        return super::preview_queue::preview(&settings, max, applier, masker).await;
    };
    let name = file.display().to_string();
    let input: Box<dyn BufRead> = match name.as_str() {
        "-" => Box::new(std::io::stdin().lock()),
        _ => Box::new(std::io::BufReader::new(
            std::fs::File::open(&file).with_context(|| format!("cannot open {name}"))?,
        )),
    };
    let sent_at = args.sent_at.unwrap_or_else(Utc::now);
    let (mut logins, mut refused) = (0u64, 0u64);
    let mut stdout = std::io::stdout().lock();
    let mut input = input;
    for n in 0.. {
        let Some(line) = read_line(&mut input)
            .with_context(|| format!("cannot read {name} at line {}", n + 1))?
        else {
            break;
        };
        let mut out = Map::new();
        out.insert("line".into(), json!(n + 1));
        let decoded = match line {
            Line::Text(text) if text.trim().is_empty() => continue,
            Line::Text(text) => crate::validate::decode(&text).map_err(|r| r.to_string()),
            Line::TooLong => Err(format!("the line is over {} KiB", MAX_LINE / 1024)),
            Line::NotUtf8 => Err("the line is not UTF-8".to_string()),
        };
        match decoded {
            Ok(event) => {
                put_row(&mut out, applier.apply(&event, sent_at)?);
                logins += 1;
            }
            // Reasons name fields, never values.
            Err(reason) => {
                out.insert("quarantined".into(), json!(reason));
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

/// The longest line read whole (S3 objects have the same limit); a longer one is quarantined
/// without being held in memory.
const MAX_LINE: usize = 256 * 1024;

/// A row's period (if any) and columns, into a preview line.
pub(super) fn put_row(out: &mut Map<String, Value>, stored: Stored) {
    if let Some(period) = stored.period {
        out.insert("period".into(), json!(period));
    }
    let columns: Map<String, Value> = (stored.columns.into_iter())
        .map(|(column, value)| (column.to_string(), json!(value)))
        .collect();
    out.insert("row".into(), Value::Object(columns));
}

/// One line of the input.
enum Line {
    Text(String),
    TooLong,
    NotUtf8,
}

/// The next line (without its line break), `None` at the end; at most [`MAX_LINE`] bytes held.
fn read_line<R: BufRead>(input: &mut R) -> std::io::Result<Option<Line>> {
    let mut bytes = Vec::new();
    let limit = (MAX_LINE + 1) as u64;
    let mut limited = std::io::Read::take(&mut *input, limit);
    if limited.read_until(b'\n', &mut bytes)? == 0 {
        return Ok(None);
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    } else if bytes.len() > MAX_LINE {
        // Skip the rest of the line in bounded pieces.
        loop {
            let (done, used) = {
                let buf = input.fill_buf()?;
                match buf.iter().position(|b| *b == b'\n') {
                    Some(i) => (true, i + 1),
                    None => (buf.is_empty(), buf.len()),
                }
            };
            input.consume(used);
            if done {
                return Ok(Some(Line::TooLong));
            }
        }
    }
    Ok(Some(match String::from_utf8(bytes) {
        Ok(text) => Line::Text(text),
        Err(_) => Line::NotUtf8,
    }))
}
