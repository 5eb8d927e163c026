//! `login-etl check`: the preflight an on-call runs first, with the same flags and environment as
//! `run`. One line per check, ✓ or ✗ with the fix (! for advice); non-zero exit if any ✗.

use std::time::Duration;

use anyhow::bail;

use super::load_keys;
use super::run::RunArgs;
use super::Globals;
use crate::mask::{KeyError, Masker, StrategyName};
use crate::sink::PgSink;
use crate::source::{SqsSettings, SqsSource};

/// Time allowed for one commit on top of the batch window, when judging the visibility timeout.
const COMMIT_MARGIN: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Lines {
    failed: usize,
}

impl Lines {
    fn ok(&mut self, what: impl std::fmt::Display) {
        println!("✓ {what}");
    }
    fn bad(&mut self, what: impl std::fmt::Display, fix: impl std::fmt::Display) {
        self.failed += 1;
        println!("✗ {what} — fix: {fix}");
    }
    fn advice(&mut self, what: impl std::fmt::Display) {
        println!("! {what}");
    }
}

pub(super) async fn execute(args: RunArgs, _: Globals) -> anyhow::Result<()> {
    let mut lines = Lines::default();
    let fingerprints = check_keys(&args, &mut lines).await;
    match SqsSource::connect(&SqsSettings::from(&args.sqs)).await {
        Ok(source) => {
            lines.ok(format!(
                "SQS: credentials resolve, queue {} answers",
                source.queue_url()
            ));
            if source.is_fifo() {
                lines.bad(
                    format!(
                        "{} is a FIFO queue: run refuses FIFO sources",
                        source.queue_url()
                    ),
                    "consume a standard queue (a FIFO dead-letter queue is fine)",
                );
            }
            check_queue(&args, &source, &mut lines).await;
        }
        Err(e) => lines.bad(format!("SQS: {e}"), "see the message"),
    }
    check_database(&args, fingerprints.as_deref(), &mut lines).await;
    if lines.failed > 0 {
        bail!("{} check(s) failed", lines.failed);
    }
    Ok(())
}

/// The keys load and make a masker; their fingerprints, for the database's check.
async fn check_keys(args: &RunArgs, lines: &mut Lines) -> Option<Vec<(String, String)>> {
    if args.strategy() == StrategyName::Sha256 {
        lines.advice("masking: sha256 is unkeyed; IPv4 masks can be reversed by brute force");
        return None;
    }
    let loaded = load_keys(&args.keys, args.sqs.sqs_endpoint.0.as_ref()).await;
    let made = loaded.and_then(|keys| Ok((Masker::new(args.strategy(), Some(&keys))?, keys)));
    match made {
        Ok((masker, keys)) => {
            lines.ok(format!(
                "masking keys load ({}, active key `{}`)",
                masker.strategy(),
                masker.key_id().unwrap_or("none")
            ));
            Some(keys.key_fingerprints())
        }
        Err(e) => {
            let fix = match &e {
                KeyError::FileMode { path, .. } => format!("chmod 600 {path}"),
                KeyError::FileOwner { path, me, .. } => format!("chown {me} {path}"),
                _ => "set LOGIN_ETL_MASK_KEY or --mask-key-file (`login-etl keygen` makes a key)"
                    .to_string(),
            };
            lines.bad(format!("masking keys: {e}"), fix);
            None
        }
    }
}

async fn check_queue(args: &RunArgs, source: &SqsSource, lines: &mut Lines) {
    let config = match source.config().await {
        Ok(config) => config,
        Err(e) => {
            return lines.bad(
                format!("SQS queue attributes: {e}"),
                "grant sqs:GetQueueAttributes",
            )
        }
    };
    let window = Duration::from_millis(args.batch_max_wait_ms);
    let needed = (window + COMMIT_MARGIN).as_secs_f64().ceil() as u64;
    let visibility = config.visibility_timeout.as_secs();
    if visibility >= needed {
        lines.ok(format!(
            "visibility timeout {visibility}s covers the batch window and a commit ({needed}s)"
        ));
    } else {
        lines.bad(
            format!("visibility timeout {visibility}s is shorter than the batch window plus a commit ({needed}s): messages will be redelivered while in flight"),
            format!("set the queue's VisibilityTimeout to at least {needed} (30 is a good default)"),
        );
    }
    // login-etl needs up to max batch deliveries and max + 1 solo attempts to tell a crash from
    // a poison message; a redrive policy that moves messages away sooner takes that decision away.
    let wanted = 2 * args.max_receives + 2;
    match config.redrive_max_receives {
        Some(n) if n >= wanted => lines.ok(format!("redrive policy maxReceiveCount {n} leaves login-etl room to quarantine poison messages itself (--max-receives {})", args.max_receives)),
        Some(n) => lines.bad(
            format!("redrive policy maxReceiveCount {n} moves messages to the SQS dead-letter queue before login-etl can tell a crash from a poison message (--max-receives {})", args.max_receives),
            format!("set maxReceiveCount to at least {wanted}, or lower --max-receives"),
        ),
        None => lines.advice("no redrive policy: login-etl quarantines poison messages itself; a policy with maxReceiveCount ≥ 2 × --max-receives + 2 is a safety net"),
    }
    let queue_days = config.retention.as_secs().div_ceil(86_400);
    let ledger_days = u64::from(args.ledger_retention_days);
    if ledger_days > queue_days {
        lines.ok(format!(
            "message retention {queue_days} days; the ledger keeps message ids {ledger_days} days, longer than any redelivery"
        ));
    } else {
        lines.bad(
            format!("--ledger-retention-days {ledger_days} is not longer than the queue's message retention ({queue_days} days)"),
            format!("set --ledger-retention-days to at least {}", queue_days + 1),
        );
    }
}

async fn check_database(args: &RunArgs, ring: Option<&[(String, String)]>, lines: &mut Lines) {
    let mut sink = match PgSink::new(&args.db.settings()) {
        Ok(sink) => sink,
        Err(e) => return lines.bad(e, "fix --database-url / LOGIN_ETL_DATABASE_URL"),
    };
    match sink.connection().pending_migrations().await {
        Ok(0) => lines.ok(format!(
            "PostgreSQL {}: reachable, schema current",
            sink.target()
        )),
        Ok(n) => {
            return lines.bad(
                format!("PostgreSQL {}: {n} migration(s) pending", sink.target()),
                "run `login-etl migrate` as the schema owner",
            )
        }
        Err(e) => return lines.bad(format!("PostgreSQL: {e}"), "see the message"),
    }
    let policy = match &args.policy.policy_file {
        Some(_) => match super::policy::load_policy(&args.policy) {
            Ok(policy) => Some(policy),
            Err(e) => return lines.bad(format!("{e:#}"), "fix the policy file"),
        },
        None => None,
    };
    if policy.as_ref().is_some_and(|p| p.seals_by_period())
        && args.strategy() == crate::mask::StrategyName::AesSiv
    {
        lines.bad(
            "--mask-strategy aes-siv would keep quarantined and extra values revealable under the \
             key ring, beyond what `shred` destroys under this policy",
            "use hmac-sha256 (the default) with a policy that seals by period",
        );
    }
    let empty = super::run_policy::may_be_empty(policy.as_ref());
    match sink.check_columns(&empty).await {
        Ok(()) => lines.ok("user_logins: every column holds what login-etl writes"),
        Err(e) => lines.bad(
            e,
            "alter the column as the message says, as the schema owner",
        ),
    }
    let adoption = super::run_policy::adoption(policy.as_ref(), args);
    match sink.recorded_policies().await {
        Ok(recorded) => match super::run_policy::objection(&adoption, &recorded) {
            None => lines.ok(format!(
                "privacy policy: stores every column as the {} recorded policies did",
                recorded.len()
            )),
            Some(line) => lines.bad(line, "see docs/security.md \"Changing a policy\""),
        },
        Err(e) => lines.bad(
            format!("PostgreSQL: the recorded privacy policies: {e}"),
            "apply docs/least-privilege.sql to the role",
        ),
    }
    if let Some(ring) = ring {
        match sink.recorded_key_fingerprints().await {
            Ok(recorded) => match crate::mask::replaced_keys(ring, &recorded) {
                None => lines.ok(format!(
                    "masking keys match the database's record ({} key id(s) recorded)",
                    recorded.len()
                )),
                Some(line) => lines.bad(line, "restore the key ring (docs/recovery.md)"),
            },
            Err(e) => lines.bad(
                format!("PostgreSQL: the recorded key fingerprints: {e}"),
                "apply docs/least-privilege.sql to the role",
            ),
        }
    }
    match sink.connection().plaintext_risk() {
        Some(risk) => lines.bad(
            format!("PostgreSQL transport: {risk}"),
            "drop sslmode from the URL (verify-full is the default off this machine) or set sslmode=verify-full",
        ),
        None => lines.ok("PostgreSQL transport: encrypted or on this machine"),
    }
    match sink.connection().run_privileges().await {
        Ok((needed, extra)) => {
            let missing: Vec<&str> = needed
                .iter()
                .filter(|p| !p.granted)
                .map(|p| p.what)
                .collect();
            if missing.is_empty() {
                lines.ok("the database role has every privilege `run` needs");
            } else {
                lines.bad(
                    format!("the database role lacks {}", missing.join("; ")),
                    "apply docs/least-privilege.sql to the role",
                );
            }
            if extra.granted {
                lines.advice(format!("the database role has {}", extra.what));
            }
        }
        Err(e) => lines.bad(format!("PostgreSQL privileges: {e}"), "see the message"),
    }
}
