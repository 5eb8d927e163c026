//! `login-etl run`: consume until shutdown (or, with --drain, until the queue is empty).

use super::Globals;
use crate::cli::{
    DbArgs, EnvelopeArg, KeyArgs, LogFormat, NetworkArgs, PolicyFileArgs, SqsArgs, StrategyArg,
};
use clap::Args;
use std::time::Duration;

use super::{connect_database, connect_source, load_keys};
use crate::envelope::EnvelopeKind;
use crate::mask::{Masker, NetworkMaskMode, NetworkMasker, StrategyName};
use crate::pipeline::{self, defaults, PipelineSettings};
use crate::sink::{PgConnection, PgOperator, PgSink};
use crate::source::{SqsSettings, SqsSource};
use crate::telemetry;
use crate::validate::RejectCode;

/// `run` options.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sqs: SqsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: KeyArgs,
    /// How `ip` and `device_id` are masked: hmac-sha256 (keyed, one-way), aes-siv (keyed,
    /// revealable with `login-etl reveal`), or sha256 (unkeyed, brute-forceable: only for tables
    /// already built that way).
    #[arg(
        long,
        env = "LOGIN_ETL_MASK_STRATEGY",
        value_enum,
        default_value = "hmac-sha256"
    )]
    pub mask_strategy: StrategyArg,
    /// Exit 0 once the queue stays empty for --drain-idle-seconds, printing a summary.
    #[arg(long, env = "LOGIN_ETL_DRAIN")]
    pub drain: bool,
    /// With --drain: how long a receive must come back empty before the queue counts as drained.
    #[arg(long, env = "LOGIN_ETL_DRAIN_IDLE_SECONDS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=20))]
    pub drain_idle_seconds: u64,
    /// Most messages per transaction. 500 rows are one cheap binary COPY; larger batches gain little
    /// and hold more messages in flight.
    #[arg(long, env = "LOGIN_ETL_BATCH_SIZE", default_value_t = defaults::BATCH_SIZE, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_size: u64,
    /// Longest a message waits for its batch to fill, in milliseconds: bounds latency for a trickle.
    #[arg(long, env = "LOGIN_ETL_BATCH_MAX_WAIT_MS", default_value_t = defaults::BATCH_MAX_WAIT_MS, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub batch_max_wait_ms: u64,
    /// Concurrent long-polling receivers (each gets up to 10 messages per call, one while S3
    /// notifications arrive: an object is read whole before the next is taken).
    #[arg(long, env = "LOGIN_ETL_RECEIVERS", default_value_t = defaults::RECEIVERS, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub receivers: u64,
    /// Long-poll wait per receive call, in seconds (SQS maximum 20).
    #[arg(long, env = "LOGIN_ETL_WAIT_TIME_SECONDS", default_value_t = defaults::WAIT_TIME_SECONDS, value_parser = clap::value_parser!(u64).range(0..=20))]
    pub wait_time_seconds: u64,
    /// A message delivered more than this many times is quarantined instead of retried again.
    #[arg(long, env = "LOGIN_ETL_MAX_RECEIVES", default_value_t = defaults::MAX_RECEIVES, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_receives: u32,
    /// SQS queue URL to which quarantined messages are also forwarded, raw and tagged with their
    /// reason, so they can be redriven after a fix (SQS already holds the raw PII; the database never
    /// does). Forwarded before the commit: a crash can duplicate a dead letter, never lose one.
    #[arg(long, env = "LOGIN_ETL_DEAD_LETTER_QUEUE")]
    pub dead_letter_queue: Option<String>,
    /// Serve Prometheus metrics on /metrics, and /healthz and /readyz, at this address (e.g.
    /// 127.0.0.1:9464, or 0.0.0.0:9464 in a container). Off when not given.
    #[arg(long, env = "LOGIN_ETL_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How long to keep retrying a failing batch write before exiting non-zero (its messages are
    /// not deleted and come back after the visibility timeout).
    #[arg(long, env = "LOGIN_ETL_WRITE_RETRY_SECONDS", default_value_t = defaults::WRITE_RETRY_SECONDS)]
    pub write_retry_seconds: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub network: NetworkArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub policy: PolicyFileArgs,
    /// Keep processed message ids (the ledger that makes redeliveries harmless) this many days,
    /// then prune them in the background. Must exceed the queue's message retention period (read
    /// at start; 14 days at most on SQS): an older message can't be redelivered.
    #[arg(long, env = "LOGIN_ETL_LEDGER_RETENTION_DAYS", default_value_t = 15,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub ledger_retention_days: u32,
    /// Delete `user_logins` rows older than this many days (by create_date) in the background:
    /// whole monthly partitions when partitioned, else 10,000-row transactions; each audited in
    /// privacy_operations. Off by default.
    #[arg(long, env = "LOGIN_ETL_RETAIN_DAYS",
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub retain_days: Option<u32>,
    /// Delete quarantine entries received more than this many days ago, in the background,
    /// audited in privacy_operations. Off by default (kept until deleted or erased).
    #[arg(long, env = "LOGIN_ETL_QUARANTINE_RETENTION_DAYS",
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub quarantine_retention_days: Option<u32>,
    /// Delete audit rows (mask_reveals, privacy_operations) older than this many days, in the
    /// background; the deletion is itself audited. Off by default; must be longer than
    /// --quarantine-retention-days and --retain-days, so the record of a deletion outlives it.
    #[arg(long, env = "LOGIN_ETL_AUDIT_RETENTION_DAYS",
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub audit_retention_days: Option<u32>,
    /// What logins may arrive wrapped in: `auto` takes off SNS notifications (the login is the
    /// JSON text of `Message`) and EventBridge events (the login is `detail`), recognised by
    /// their shape; `sns` / `eventbridge` take off only that one. Base64 of gzip (`H4sI…`) is
    /// decoded first, and a JSON array or NDJSON body is split into its logins. `none` turns all
    /// of this off: every body is one login, validated as it arrives.
    #[arg(long, env = "LOGIN_ETL_ENVELOPE", value_enum, default_value_t = EnvelopeArg::Auto)]
    pub envelope: EnvelopeArg,
    /// Largest body accepted after decompressing base64+gzip; a larger one (a zip bomb) is
    /// quarantined without being inflated.
    #[arg(long, env = "LOGIN_ETL_MAX_DECOMPRESSED_BYTES", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u64).range(1024..=268_435_456))]
    pub max_decompressed_bytes: u64,
    /// Most logins one message may hold as a JSON array or NDJSON; a message with more is
    /// quarantined whole (`too_many_logins`, with the count).
    #[arg(long, env = "LOGIN_ETL_MAX_LOGINS_PER_MESSAGE", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_logins_per_message: u32,
    /// Store a login's top-level fields beyond the six known ones in `user_logins.extra_fields`
    /// (jsonb), scrubbed fail-closed like a quarantine body: names that could be values, and
    /// every string or number, become masks or keyed fingerprints (nulls and booleans stay). Off
    /// by default (the column stays NULL); `status` lists the names either way.
    #[arg(long, env = "LOGIN_ETL_KEEP_EXTRA_FIELDS")]
    pub keep_extra_fields: bool,
}

impl RunArgs {
    /// `--mask-strategy` as the library knows it.
    pub fn strategy(&self) -> StrategyName {
        self.mask_strategy.into()
    }
}

impl From<&RunArgs> for PipelineSettings {
    fn from(args: &RunArgs) -> Self {
        PipelineSettings {
            decoding: crate::envelope::Decoding {
                envelope: args.envelope.into(),
                max_decompressed_bytes: args.max_decompressed_bytes as usize,
                max_logins_per_message: args.max_logins_per_message as usize,
                keep_extra_fields: args.keep_extra_fields,
            },
            batch_size: args.batch_size as usize,
            batch_max_wait: Duration::from_millis(args.batch_max_wait_ms),
            receivers: args.receivers as usize,
            wait_time: Duration::from_secs(args.wait_time_seconds),
            drain_idle: args
                .drain
                .then(|| Duration::from_secs(args.drain_idle_seconds)),
            max_receives: args.max_receives,
            write_retry_timeout: Duration::from_secs(args.write_retry_seconds),
            dead_letter_queue: args.dead_letter_queue.clone().filter(|url| !url.is_empty()),
            progress_bar: args.drain && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }
}

/// How often queue depth and readiness are probed with `--metrics-addr`.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// How often the ledger is pruned of ids older than `--ledger-retention-days` (and partitions
/// created ahead, when `user_logins` is partitioned).
const PRUNE_EVERY: Duration = Duration::from_secs(600);

pub(super) async fn execute(args: RunArgs, globals: Globals) -> anyhow::Result<()> {
    let Globals {
        log_format,
        shutdown,
    } = globals;
    let network_on = args.network.mode() != NetworkMaskMode::Off;
    let policy = match &args.policy.policy_file {
        Some(_) => Some(super::policy::load_policy(&args.policy)?),
        None => None,
    };
    anyhow::ensure!(
        policy.is_none() || !network_on,
        "--ip-network-mask and --policy both say what masked_ip_network holds: drop the flag and \
         say `store = \"network\"` under [ip] in the policy"
    );
    // Quarantine bodies and `extra_fields` are masked by --mask-strategy: under aes-siv they would
    // keep a period's addresses revealable under the ring after its keys are shredded.
    anyhow::ensure!(
        !(policy.as_ref().is_some_and(|p| p.seals_by_period())
            && args.strategy() == StrategyName::AesSiv),
        "--mask-strategy aes-siv would keep quarantined and extra values revealable under the \
         key ring, beyond what `shred` destroys under this policy's scoped aes-siv: use \
         hmac-sha256 (the default) with it"
    );
    let keys = if args.strategy() != StrategyName::Sha256 || network_on || policy.is_some() {
        Some(load_keys(&args.keys, args.sqs.sqs_endpoint.0.as_ref()).await?)
    } else {
        None
    };
    if args.strategy() == StrategyName::Sha256 {
        tracing::warn!(
            "--mask-strategy sha256 is unkeyed: every IPv4 mask can be reversed by hashing all \
             2^32 addresses. Use it only to stay compatible with an existing table."
        );
    }
    let network = match &keys {
        Some(keys) => NetworkMasker::new(args.network.mode(), args.network.prefixes(), keys)?,
        None => None,
    };
    let mut masker = Masker::new(args.strategy(), keys.as_ref())?.with_network(network);
    if let (Some(policy), Some(keys)) = (&policy, &keys) {
        let applier = crate::policy::Applier::new(policy.clone(), keys.clone());
        applier.check_keys()?;
        tracing::info!(policy = %policy.fingerprint(), "rows are stored as the policy says");
        masker = masker.with_policy(std::sync::Arc::new(applier));
    }
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
    let mut sink = PgSink::from(connect_database(&args.db, budget, &shutdown).await?);
    sink.check_columns(&super::run_policy::may_be_empty(policy.as_ref()))
        .await?;
    let adoption = super::run_policy::adoption(policy.as_ref(), &args);
    super::run_policy::enforce(&mut sink, &adoption).await?;
    if let Some(keys) = &keys {
        let ring = keys.key_fingerprints();
        if let Some(line) =
            crate::mask::replaced_keys(&ring, &sink.recorded_key_fingerprints().await?)
        {
            anyhow::bail!(line);
        }
        let (active, fingerprint) = &ring[0];
        sink.record_key_on_first_write(active, fingerprint);
        sink.honour_erasures(keys);
    } else {
        let records = sink.erasure_records().await?;
        anyhow::ensure!(
            records == 0,
            "{records} erasure records exist and the sha256 strategy runs without keys, so this \
             consumer could not leave out the erased subjects' queued logins; give it the \
             masking keys (LOGIN_ETL_MASK_KEY) that `erase` used"
        );
    }
    let source = connect_source(&SqsSettings::from(&args.sqs), budget, &shutdown).await?;
    anyhow::ensure!(
        !source.is_fifo(),
        "{} is a FIFO queue: login-etl consumes in parallel batches and keeps no per-group \
         order, so it refuses FIFO sources; point it at a standard queue (the dead-letter \
         queue may be FIFO)",
        source.queue_url()
    );
    let ledger_retention = ledger_retention(&args, &source).await?;
    // The recorder first: what the background tasks record from their first round on (the
    // first ledger pruning's timestamp) would otherwise go nowhere.
    let recorder = match args.metrics_addr {
        Some(_) => {
            let key_id = masker.key_id().unwrap_or("none");
            let known = telemetry::metrics::Known {
                retry_kinds: crate::retry::KINDS,
                reasons: &RejectCode::ALL.map(RejectCode::as_str),
                envelopes: &EnvelopeKind::ALL.map(EnvelopeKind::as_str),
            };
            let handle = telemetry::metrics::install(masker.strategy(), key_id, known)?;
            crate::background::count_retries();
            Some(handle)
        }
        None => None,
    };
    let maintenance = tokio::spawn(crate::background::maintenance_loop(
        PgOperator::new(&args.db.settings())?,
        crate::background::Upkeep {
            ledger_retention,
            retain_days: args.retain_days,
            quarantine_retention_days: args.quarantine_retention_days,
            audit_retention_days: args.audit_retention_days,
            every: PRUNE_EVERY,
            once: args.drain,
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
    if let (Some(addr), Some(handle)) = (args.metrics_addr, recorder) {
        telemetry::serve(addr, handle.clone(), shutdown.clone()).await?;
        let dead_letter = match &settings.dead_letter_queue {
            Some(url) => Some(source.sibling(url).await?),
            None => None,
        };
        let probe_db = PgConnection::new(&args.db.settings())?;
        tokio::spawn(crate::background::probe_loop(
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
        // A drain does everything once, its upkeep round included (retention, pruning,
        // partitions): exiting before that round ends would leave it undone.
        maintenance.await.ok();
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
