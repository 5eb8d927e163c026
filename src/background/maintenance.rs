//! Background upkeep during `run`: prune the ledger past its retention, keep monthly partitions
//! created ahead, and (with `--retain-days`) delete old rows. Failures are logged and retried next
//! round: none blocks writes (an unpruned ledger costs space; a missing partition sends rows to the
//! DEFAULT partition; retention catches up next round).

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::sink::{Accountable, PgOperator};
use crate::telemetry::metrics;

/// What the background upkeep does, and how often.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upkeep {
    /// Ledger ids older than this are pruned.
    pub(crate) ledger_retention: Duration,
    /// Rows older than this many days are deleted (`None`: kept).
    pub(crate) retain_days: Option<u32>,
    /// Quarantine entries older than this many days are deleted (`None`: kept).
    pub(crate) quarantine_retention_days: Option<u32>,
    /// Audit rows (reveals, privacy operations) older than this many days are deleted.
    pub(crate) audit_retention_days: Option<u32>,
    /// Pause between rounds.
    pub(crate) every: Duration,
    /// One round only (`run --drain`, which waits for it before it exits).
    pub(crate) once: bool,
}

/// Rows deleted per retention transaction.
const RETENTION_BATCH: i64 = 10_000;

/// Now, then every `every` until shutdown: prune ledger ids older than the ledger retention,
/// create the partitions of the coming months if `user_logins` is partitioned, apply
/// `--retain-days`.
pub(crate) async fn maintenance_loop(
    mut database: PgOperator,
    upkeep: Upkeep,
    shutdown: CancellationToken,
) {
    let retention =
        chrono::Duration::from_std(upkeep.ledger_retention).unwrap_or(chrono::Duration::MAX);
    let every = upkeep.every;
    loop {
        let cutoff = Utc::now() - retention;
        let pruned = database.prune_ledger(cutoff, &shutdown).await;
        if pruned.is_ok() {
            metrics::ledger_pruning_ran();
        }
        match pruned {
            Ok(0) => {}
            Ok(pruned) => {
                metrics::ledger_pruned(pruned);
                tracing::info!(pruned, %cutoff, "pruned ledger ids older than the retention");
            }
            Err(e) => tracing::warn!(error = %e, "ledger pruning failed; trying again later"),
        }
        if let Some(days) = upkeep.retain_days {
            retain(&mut database, days).await;
        }
        if let Some(days) = upkeep.quarantine_retention_days {
            retain_quarantine(&mut database, days).await;
        }
        if let Some(days) = upkeep.audit_retention_days {
            retain_audit(&mut database, days).await;
        }
        if let Err(e) = database.ensure_partitions().await {
            tracing::warn!(error = %e, "creating the coming months' partitions failed (rows go to user_logins_default meanwhile); trying again later");
        }
        if upkeep.once {
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Retention is done by `login-etl run`, for the reason of its flag.
fn run_itself(flag: &str, days: u32) -> Accountable {
    Accountable {
        os_user: "login-etl".into(),
        actor: "login-etl run".into(),
        reason: format!("{flag} {days}"),
    }
}

/// Delete quarantine entries received more than `days` days ago.
async fn retain_quarantine(database: &mut PgOperator, days: u32) {
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(days));
    let who = run_itself("--quarantine-retention-days", days);
    match database
        .delete_quarantine_before(cutoff, RETENTION_BATCH, &who)
        .await
    {
        Ok(0) => {}
        Ok(deleted) => {
            tracing::info!(deleted, %cutoff, "deleted quarantine entries older than --quarantine-retention-days")
        }
        Err(e) => tracing::warn!(error = %e, "quarantine retention failed; trying again later"),
    }
}

/// Delete audit rows older than `days` days.
async fn retain_audit(database: &mut PgOperator, days: u32) {
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(days));
    let who = run_itself("--audit-retention-days", days);
    match database
        .delete_audit_before(cutoff, RETENTION_BATCH, &who)
        .await
    {
        Ok(0) => {}
        Ok(deleted) => {
            tracing::info!(deleted, %cutoff, "deleted audit rows older than --audit-retention-days")
        }
        Err(e) => tracing::warn!(error = %e, "audit retention failed; trying again later"),
    }
}

/// Delete rows older than `days` days, audited as done by `login-etl run`.
async fn retain(database: &mut PgOperator, days: u32) {
    let cutoff = Utc::now().date_naive() - chrono::Days::new(u64::from(days));
    let who = run_itself("--retain-days", days);
    match database.delete_before(cutoff, RETENTION_BATCH, &who).await {
        Ok(0) => {}
        Ok(deleted) => {
            tracing::info!(deleted, %cutoff, "deleted user_logins rows older than --retain-days")
        }
        Err(e) => tracing::warn!(error = %e, "retention failed; trying again later"),
    }
}
