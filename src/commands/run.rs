//! `login-etl run`: consume until shutdown (or, with --drain, until the queue is empty).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{connect_sink, connect_source, load_keys};
use crate::cli::{LogFormat, RunArgs};
use crate::mask::{Masker, NetworkMaskMode, NetworkMasker, StrategyName};
use crate::pipeline::{self, PipelineSettings};
use crate::source::{SqsSettings, SqsSource};
use crate::telemetry;

/// How often queue depth and readiness are probed with `--metrics-addr`.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// How often the ledger is pruned of ids older than `--ledger-retention-days` (and partitions
/// created ahead, when `user_logins` is partitioned).
const PRUNE_EVERY: Duration = Duration::from_secs(600);

pub(super) async fn run(
    args: RunArgs,
    log_format: LogFormat,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let network_on = args.network.ip_network_mask != NetworkMaskMode::Off;
    let keys = if args.mask_strategy != StrategyName::Sha256 || network_on {
        Some(load_keys(&args.keys, args.sqs.sqs_endpoint.0.as_ref()).await?)
    } else {
        None
    };
    if args.mask_strategy == StrategyName::Sha256 {
        tracing::warn!(
            "--mask-strategy sha256 is unkeyed: every IPv4 mask can be reversed by hashing all \
             2^32 addresses. Use it only to stay compatible with an existing table."
        );
    }
    let network = match &keys {
        Some(keys) => {
            NetworkMasker::new(args.network.ip_network_mask, args.network.prefixes(), keys)?
        }
        None => None,
    };
    let masker = Masker::new(args.mask_strategy, keys.as_ref())?.with_network(network);
    tracing::info!(
        strategy = masker.strategy(),
        network = ?args.network.ip_network_mask,
        "masking"
    );

    if let Some(audit) = args.audit_retention_days {
        let longest = args.retain_days.max(args.quarantine_retention_days);
        if let Some(longest) = longest.filter(|&l| audit <= l) {
            anyhow::bail!(
                "--audit-retention-days {audit} must be longer than --retain-days / \
                 --quarantine-retention-days ({longest}), so the record of a deletion outlives \
                 what it deleted"
            );
        }
    }
    let budget = Duration::from_secs(args.write_retry_seconds);
    let sink = connect_sink(&args.db, budget, &shutdown).await?;
    let source = connect_source(&SqsSettings::from(&args.sqs), budget, &shutdown).await?;
    let ledger_retention = ledger_retention(&args, &source).await?;
    tokio::spawn(crate::sink::maintenance_loop(
        args.db.sink()?,
        crate::sink::Upkeep {
            ledger_retention,
            retain_days: args.retain_days,
            quarantine_retention_days: args.quarantine_retention_days,
            audit_retention_days: args.audit_retention_days,
            every: PRUNE_EVERY,
        },
        shutdown.clone(),
    ));
    tracing::info!(
        queue_url = source.queue_url(),
        drain = args.drain,
        "consuming"
    );
    let mut settings = PipelineSettings::from(&args);
    settings.progress_bar &= log_format == LogFormat::Text;
    if let Some(addr) = args.metrics_addr {
        let key_id = masker.key_id().unwrap_or("none");
        let handle = telemetry::metrics::install(masker.strategy(), key_id)?;
        telemetry::serve(addr, handle.clone(), shutdown.clone()).await?;
        let dead_letter = match &settings.dead_letter_queue {
            Some(url) => Some(source.sibling(url).await?),
            None => None,
        };
        let probe_db = args.db.sink()?;
        tokio::spawn(telemetry::probe_loop(
            source.clone(),
            dead_letter,
            probe_db,
            PROBE_EVERY,
            Some(handle),
            shutdown.clone(),
        ));
    }
    let summary = pipeline::run(source, sink, masker, settings, shutdown).await?;
    tracing::info!(%summary, "stopped");
    if args.drain {
        println!("{summary}");
    }
    Ok(())
}

/// `--ledger-retention-days`, refused unless it outlasts the queue's own retention: a message
/// redelivered after its id was pruned would be written twice.
async fn ledger_retention(args: &RunArgs, source: &SqsSource) -> anyhow::Result<Duration> {
    let days = u64::from(args.ledger_retention_days);
    let queue_days = source.config().await?.retention.as_secs().div_ceil(86_400);
    anyhow::ensure!(
        days > queue_days,
        "--ledger-retention-days {days} is not longer than the queue's message retention ({queue_days} days): \
         a message redelivered after its id was pruned would be written twice; set at least {}",
        queue_days + 1
    );
    Ok(Duration::from_secs(days * 86_400))
}
