//! Background upkeep during `run`: prune the ledger past its retention and keep monthly
//! partitions created ahead. Failures are logged and retried next round: neither blocks writes (an
//! unpruned ledger costs space; a missing partition sends rows to the DEFAULT partition).

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::PgSink;

/// Now, then every `every` until shutdown: prune ledger ids older than `retention`, and create
/// the partitions of the coming months if `user_logins` is partitioned.
pub async fn maintenance_loop(
    mut sink: PgSink,
    retention: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    loop {
        let cutoff = Utc::now() - retention;
        match sink.prune_ledger(cutoff, &shutdown).await {
            Ok(0) => {}
            Ok(pruned) => {
                metrics::counter!("login_etl_ledger_pruned_total").increment(pruned);
                tracing::info!(pruned, %cutoff, "pruned ledger ids older than the retention");
            }
            Err(e) => tracing::warn!(error = %e, "ledger pruning failed; trying again later"),
        }
        if let Err(e) = sink.ensure_partitions().await {
            tracing::warn!(error = %e, "creating the coming months' partitions failed (rows go to user_logins_default meanwhile); trying again later");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
