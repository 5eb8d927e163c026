//! `login-etl shred`: crypto-shredding. Destroys the random keys of every period that ends by
//! `--before`, so the `aes-siv` values sealed under them (a policy's scoped `aes-siv`) can never
//! be revealed again, by anyone; the rows, their counts and their one-way columns stay. Asks
//! first (`--yes` skips the question), audited in `privacy_operations`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Args;

use super::{os_user, Globals};
use crate::cli::{DbArgs, PolicyFileArgs};
use crate::sink::{Accountable, PgOperator, ShredPeriod};

/// `shred` options.
#[derive(Debug, Clone, Args)]
pub struct ShredArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    /// Optional: the policy in force, checked to seal something under period keys.
    #[command(flatten)]
    pub policy: PolicyFileArgs,
    /// Shred every period that ends by the start of this one: `2026-01` (a month), `2026-W03`
    /// (an ISO week) or `2026-01-15` (a day). Never a period still running.
    #[arg(long, value_parser = parse_before)]
    pub before: DateTime<Utc>,
    /// Why (a retention rule, a ticket); stored in the audit row.
    #[arg(long)]
    pub reason: String,
    /// Who is accountable, if not the OS user running the command.
    #[arg(long)]
    pub actor: Option<String>,
    /// Do not ask for confirmation (scripts, scheduled jobs).
    #[arg(long)]
    pub yes: bool,
    /// Say what would be shredded, change nothing, record nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_before(text: &str) -> Result<DateTime<Utc>, String> {
    crate::mask::period_start(text).ok_or_else(|| {
        format!("`{text}` is not a period: give a month (2026-01), an ISO week (2026-W03) or a day (2026-01-15)")
    })
}

pub(super) async fn execute(args: ShredArgs, _: Globals) -> anyhow::Result<()> {
    crate::cli::audit_text("--reason", Some(&args.reason))?;
    crate::cli::audit_text("--actor", args.actor.as_deref())?;
    if args.reason.trim().is_empty() {
        bail!(
            "--reason must say why (a retention rule, a ticket); it is stored in the audit trail"
        );
    }
    if args.before > Utc::now() {
        bail!(
            "--before {} is in the future: a period still running is still being written; shred \
             periods that have ended",
            args.before.format("%Y-%m-%d")
        );
    }
    if args.policy.policy_file.is_some() {
        let policy = super::policy::load_policy(&args.policy)?;
        if !policy.seals_by_period() {
            bail!(
                "policy {} seals nothing under period keys (no aes-siv field with a scope): \
                 there is nothing to shred",
                policy.fingerprint()
            );
        }
    }
    let mut database = PgOperator::new(&args.db.settings())?;
    database.require_current_schema().await?;
    let target = database.target().to_owned();
    let plan = (database.shred_plan(args.before).await)
        .with_context(|| format!("cannot read period_keys in {target}"))?;
    let before = args.before.format("%Y-%m-%d");
    println!("{}", describe(&plan, &before.to_string()));
    if args.dry_run {
        println!("dry run: nothing changed");
        return Ok(());
    }
    if !args.yes && !confirmed()? {
        bail!("not confirmed: nothing was shredded");
    }
    let who = Accountable {
        os_user: os_user(),
        actor: args.actor.clone().unwrap_or_else(os_user),
        reason: args.reason.clone(),
    };
    let done = (database.shred(args.before, &who).await)
        .with_context(|| format!("cannot shred in {target}; nothing was changed"))?;
    let rows: u64 = done.periods.iter().map(|p| p.rows).sum();
    println!(
        "shredded the keys of {} ({rows} rows keep their one-way columns; their sealed values \
         can no longer be revealed); no key will be made for a period ending by {before}; \
         audited in privacy_operations (id {})",
        periods(done.periods.len()),
        done.audit_id
    );
    Ok(())
}

fn describe(plan: &[ShredPeriod], before: &str) -> String {
    if plan.is_empty() {
        return format!(
            "no period key ends by {before} (a period ending by then will never be given one)"
        );
    }
    let lines: Vec<String> = (plan.iter())
        .map(|p| {
            let made = p.created_at.format("%Y-%m-%d");
            format!("  {:<12} key made {made}, {} rows", p.period, p.rows)
        })
        .collect();
    format!(
        "the keys of {} ending by {before} will be destroyed; the aes-siv values sealed under \
         them can never be revealed again:\n{}",
        periods(plan.len()),
        lines.join("\n")
    )
}

fn periods(n: usize) -> String {
    match n {
        1 => "1 period".into(),
        n => format!("{n} periods"),
    }
}

/// Ask on the terminal; without one, only `--yes` confirms.
fn confirmed() -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("shred asks for confirmation on a terminal; pass --yes to confirm without one");
    }
    print!("type `shred` to destroy these keys for good: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(answer.trim() == "shred")
}
