//! `login-etl redrive`: move dead letters back to the queue `run` reads, after a fix, as the
//! messages they were (`source::sqs::redrive`): counted by reason first with `--dry-run`,
//! audited in `privacy_operations` before anything moves.

use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::{open_queue, os_user, Globals};
use crate::cli::{DbArgs, SqsArgs};
use crate::sink::{Accountable, PgOperator};
use crate::source::{Redriven, SqsSettings};

/// How long a dead letter stays hidden while it is counted or moved, at most.
const HOLD: Duration = Duration::from_secs(120);
/// Dead letters a `--dry-run` counts at most (it holds their receipts to release them).
const MAX_COUNTED: usize = 100_000;

/// `redrive` options.
#[derive(Debug, Clone, Args)]
pub struct RedriveArgs {
    /// The queue to move them to: the one `run` reads.
    #[command(flatten)]
    pub sqs: SqsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    /// The dead-letter queue (URL) to empty, as given to `run`.
    #[arg(long, env = "LOGIN_ETL_DEAD_LETTER_QUEUE")]
    pub dead_letter_queue: String,
    /// Count the dead letters by reason and move nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Why; stored in the audit row.
    #[arg(long, default_value = "redrive after a fix")]
    pub reason: String,
    /// Who is accountable, if not the OS user running the command.
    #[arg(long)]
    pub actor: Option<String>,
}

pub(super) async fn execute(args: RedriveArgs, _: Globals) -> anyhow::Result<()> {
    crate::cli::audit_text("--reason", Some(&args.reason))?;
    crate::cli::audit_text("--actor", args.actor.as_deref())?;
    if args.dead_letter_queue.trim().is_empty() {
        anyhow::bail!("--dead-letter-queue is empty: give the dead-letter queue's URL");
    }
    let queue = open_queue(&SqsSettings::from(&args.sqs)).await?;
    let dead_letters = (queue.sibling(&args.dead_letter_queue).await).with_context(|| {
        format!(
            "cannot open the dead-letter queue {}",
            args.dead_letter_queue
        )
    })?;
    // By ARN: two different URLs can name one queue, and moving a queue into itself never ends.
    if dead_letters.arn().await? == queue.arn().await? {
        anyhow::bail!(
            "--dead-letter-queue is the queue itself ({}): give the dead-letter queue's URL",
            queue.queue_url()
        );
    }
    if args.dry_run {
        let census = dead_letters.census(HOLD, MAX_COUNTED).await?;
        print_by_reason(&census);
        let counted: u64 = census.by_reason.values().sum();
        if dead_letters.is_fifo() {
            // SQS hides the rest of a FIFO message group while its first messages are in hand, so
            // a census sees about ten per group: the queue's depth says how many wait.
            let depth = dead_letters.depth().await?;
            let waiting = depth.visible + depth.in_flight;
            if waiting > counted {
                println!(
                    "dry run: would move about {waiting} dead letters to {}; {counted} of them \
                     counted by reason (a FIFO queue hands out one message group at a time); \
                     nothing moved",
                    queue.queue_url()
                );
                return Ok(());
            }
        }
        let more = if counted as usize >= MAX_COUNTED {
            " (counted up to here; more wait)"
        } else {
            ""
        };
        println!(
            "dry run: would move {counted} dead letters to {}{more}; nothing moved",
            queue.queue_url()
        );
        return Ok(());
    }
    let depth = dead_letters.depth().await?;
    let waiting = depth.visible + depth.in_flight;
    if waiting == 0 {
        println!("no dead letters in {}", args.dead_letter_queue);
        return Ok(());
    }
    let mut database = PgOperator::new(&args.db.settings())?;
    database.require_current_schema().await?;
    let who = Accountable {
        os_user: os_user(),
        actor: args.actor.clone().unwrap_or_else(os_user),
        reason: args.reason.clone(),
    };
    let detail = serde_json::json!({
        "from": args.dead_letter_queue,
        "to": queue.queue_url(),
        "approximate": true,
    });
    let audit_id = (database
        .audit_operation("redrive", &who, waiting, detail)
        .await)
        .context("cannot write the audit row; nothing moved")?;
    let moved = dead_letters.redrive_to(&queue, HOLD).await?;
    print_by_reason(&moved);
    for why in &moved.refused {
        eprintln!("not moved, left in the dead-letter queue: {why}");
    }
    println!(
        "moved {} dead letters to {}; audited in privacy_operations (id {audit_id})",
        moved.moved,
        queue.queue_url()
    );
    let mut failures = Vec::new();
    if moved.not_deleted > 0 {
        println!(
            "{} copied, not deleted: still in {}",
            moved.not_deleted, args.dead_letter_queue
        );
        // Counted in the audit too: a second row, as audit rows cannot be changed.
        let detail = serde_json::json!({
            "from": args.dead_letter_queue,
            "to": queue.queue_url(),
            "of": audit_id,
            "moved": moved.moved,
            "copied_not_deleted": moved.not_deleted,
        });
        if let Err(e) = (database)
            .audit_operation("redrive", &who, moved.not_deleted, detail)
            .await
        {
            eprintln!("cannot audit the dead letters copied but not deleted: {e}");
        }
        failures.push(format!(
            "{} dead letters were copied but not deleted: they are still in the dead-letter queue \
             and will come back as duplicates, which the consumer's ledger drops by their \
             original id",
            moved.not_deleted
        ));
    }
    if !moved.refused.is_empty() {
        failures.push(format!(
            "{} dead letters could not be moved",
            moved.refused.len()
        ));
    }
    if !failures.is_empty() {
        anyhow::bail!("{}", failures.join("; "));
    }
    Ok(())
}

fn print_by_reason(report: &Redriven) {
    for (reason, n) in &report.by_reason {
        println!("{n:>8}  {reason}");
    }
}
