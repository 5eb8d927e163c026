//! `login-etl preview --from-queue`: what the next messages of the queue would become under the
//! policy, through the path `run` takes (envelopes, base64+gzip, arrays and NDJSON, validation),
//! with nothing written and nothing deleted: every message shown is handed back at once.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use serde_json::{json, Map, Value};

use crate::envelope::Decoding;
use crate::mask::Masker;
use crate::policy::Applier;
use crate::source::s3::notification::{self, Notification};
use crate::source::{SqsSettings, SqsSource};
use crate::transform::{self, OutcomeKind};

/// Below this `maxReceiveCount`, preview refuses to receive: it would leave `run` too few.
const MIN_REDRIVE_RECEIVES: u32 = 5;

/// Show up to `max` messages of the queue `settings` names, one JSON line per login.
pub(super) async fn preview(
    settings: &SqsSettings,
    max: usize,
    applier: Arc<Applier>,
    masker: Masker,
) -> anyhow::Result<()> {
    let source = SqsSource::connect(settings)
        .await
        .context("cannot reach the queue")?;
    anyhow::ensure!(
        !source.is_fifo(),
        "{} is a FIFO queue, which `run` refuses (it keeps no per-group order): preview the queue \
         `run` would read",
        source.queue_url()
    );
    // Each message shown is received once more: under a tight redrive policy that receive could
    // be the one that sends it to the dead-letter queue before `run` sees it.
    let redrive = (source.config().await)
        .context("cannot read the queue's attributes")?
        .redrive_max_receives;
    if let Some(limit) = redrive.filter(|limit| *limit < MIN_REDRIVE_RECEIVES) {
        anyhow::bail!(
            "{}'s redrive policy moves a message to its dead-letter queue after {limit} receives, \
             and preview would use one of them: preview a copy of the messages (another queue, \
             or a file), or raise maxReceiveCount to {MIN_REDRIVE_RECEIVES} or more",
            source.queue_url()
        );
    }
    let mut held = Vec::new();
    let shown = show(&source, max, redrive, &applier, &masker, &mut held).await;
    // Whatever happened, hand every message back: preview never keeps or deletes one.
    let kept = source.extend_visibility(&held, Duration::ZERO).await;
    let (messages, rows, refused) = shown?;
    match kept {
        Ok(0) => {}
        Ok(n) => eprintln!("{n} messages could not be handed back; they return after the queue's visibility timeout"),
        Err(e) => eprintln!("the messages could not be handed back ({e}); they return after the queue's visibility timeout"),
    }
    eprintln!(
        "preview of {messages} messages of {} under policy {}: {rows} rows, {refused} quarantined; \
         nothing written or deleted (each message was received once: that counts toward \
         --max-receives and the queue's maxReceiveCount)",
        source.queue_url(),
        applier.fingerprint()
    );
    Ok(())
}

/// Receive and print; `held` gathers every receipt, even when this fails half-way.
async fn show(
    source: &SqsSource,
    max: usize,
    redrive: Option<u32>,
    applier: &Applier,
    masker: &Masker,
    held: &mut Vec<crate::source::ReceiptHandle>,
) -> anyhow::Result<(usize, u64, u64)> {
    let (mut rows, mut refused) = (0u64, 0u64);
    while held.len() < max {
        let batch = source
            .receive((max - held.len()).min(10), Duration::from_secs(1))
            .await
            .context("cannot receive from the queue")?;
        if batch.is_empty() {
            break;
        }
        held.extend(batch.iter().map(|e| e.receipt_handle.clone()));
        for envelope in &batch {
            if let Some(limit) = redrive.filter(|limit| envelope.receive_count + 1 >= *limit) {
                eprintln!(
                    "message {} has now been received {} times; the queue moves it to its \
                     dead-letter queue after {limit}",
                    envelope.message_id.0, envelope.receive_count
                );
            }
            let mut lines = Vec::new();
            let message = json!(envelope.message_id.0);
            if !matches!(
                notification::parse_maybe_in_sns(&envelope.body),
                Notification::NotS3
            ) {
                lines.push(json!({"message": message,
                    "s3_notification": "run reads its objects; preview shows message bodies only"}));
            } else {
                let outcomes =
                    transform::process_with(envelope, masker, &Decoding::default(), Utc::now());
                for outcome in outcomes {
                    let mut out = Map::new();
                    out.insert("message".into(), message.clone());
                    if let Some(element) = outcome.element {
                        out.insert("element".into(), json!(element));
                    }
                    match outcome.kind {
                        OutcomeKind::Row {
                            login,
                            create_date,
                            sent_at,
                            ..
                        } => {
                            let stored = applier.stored(&login, create_date, sent_at);
                            super::preview::put_row(&mut out, stored);
                            rows += 1;
                        }
                        // Reasons name fields, never values.
                        OutcomeKind::Quarantine(q) => {
                            out.insert("quarantined".into(), json!(q.rejection.message));
                            refused += 1;
                        }
                    }
                    lines.push(Value::Object(out));
                }
            }
            for line in lines {
                match writeln!(std::io::stdout(), "{line}") {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                        return Ok((held.len(), rows, refused))
                    }
                    Err(e) => return Err(e).context("cannot write the preview"),
                }
            }
        }
    }
    Ok((held.len(), rows, refused))
}
