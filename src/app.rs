//! The subcommands, wired from CLI arguments to the library. This is the edge: errors get context
//! here (anyhow) and are turned into messages a user can act on.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::cli::{
    Command, DbArgs, DuplicatesArgs, FieldArg, KeyArgs, KeygenArgs, PurgeArgs, ReportFormat,
    ReportKind, RevealArgs, RunArgs, SendSampleArgs, SqsArgs, StatusArgs,
};
use crate::mask::{keys, Field, KeyError, KeyRing, Masker, StrategyName};
use crate::pipeline::{self, PipelineSettings};
use crate::retry::Backoff;
use crate::sample::{self, SampleSpec};
use crate::sink::{PgSink, RevealAudit, RevealSelector};
use crate::source::{SqsSettings, SqsSource};

/// Environment variable holding the masking key ring.
pub const MASK_KEY_ENV: &str = "LOGIN_ETL_MASK_KEY";

/// The bundled sample: 100 messages shaped like the take-home's queue (see `data/README.md`).
pub const SAMPLE_JSONL: &str = include_str!("../data/sample-messages.jsonl");

/// Run one subcommand to completion.
pub async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::SendSample(args) => send_sample(args).await,
        Command::Status(args) => status(args).await,
        Command::PurgeQueue(args) => purge_queue(args).await,
        Command::Keygen(args) => keygen(args).await,
        Command::Reveal(args) => reveal(args).await,
        Command::Report(args) => match args.report {
            ReportKind::Duplicates(args) => report_duplicates(args).await,
        },
    }
}

impl SqsArgs {
    /// The source settings these flags describe.
    pub fn settings(&self) -> SqsSettings {
        SqsSettings {
            endpoint: Some(self.sqs_endpoint.trim().to_string()).filter(|e| !e.is_empty()),
            region: self.region.clone().filter(|r| !r.is_empty()),
            queue_url: self.queue_url.clone().filter(|u| !u.is_empty()),
            queue_name: self.queue_name.clone(),
        }
    }
}

/// The key ring from `LOGIN_ETL_MASK_KEY`, else from the key file; `kms:` entries are decrypted
/// with AWS KMS.
async fn load_keys(args: &KeyArgs, sqs_endpoint: Option<&str>) -> Result<KeyRing, KeyError> {
    let text = match std::env::var(MASK_KEY_ENV) {
        Ok(keys) if !keys.trim().is_empty() => Zeroizing::new(keys),
        _ => match &args.mask_key_file {
            Some(path) => keys::read_file(path)?,
            None => return Err(KeyError::Missing),
        },
    };
    let entries = keys::parse_entries(&text)?;
    let endpoint = kms_endpoint(args.kms_endpoint.as_deref().or(sqs_endpoint));
    crate::kms::decrypt_entries(entries, endpoint.as_deref()).await
}

/// The KMS endpoint: the one given, else LOGIN_ETL_SQS_ENDPOINT (one LocalStack serves both),
/// else AWS.
fn kms_endpoint(given: Option<&str>) -> Option<String> {
    given
        .filter(|e| !e.trim().is_empty())
        .map(str::to_string)
        .or_else(|| std::env::var("LOGIN_ETL_SQS_ENDPOINT").ok())
        .filter(|e| !e.trim().is_empty())
}

/// Retries of a start-up step (database or queue not reachable yet), bounded by a time budget.
struct StartupRetry {
    started: Instant,
    budget: Duration,
    backoff: Backoff,
}

impl StartupRetry {
    fn new(budget: Duration) -> Self {
        Self {
            started: Instant::now(),
            budget,
            backoff: Backoff::default(),
        }
    }

    /// Log and wait before the next attempt; `false` once the budget is spent.
    async fn wait(&mut self, what: &str, error: &dyn std::fmt::Display) -> bool {
        let delay = self.backoff.next_delay();
        if self.started.elapsed() + delay > self.budget {
            return false;
        }
        tracing::warn!(error = %error, retry_in = ?delay, attempt = self.backoff.attempts(), "{what} not reachable yet, retrying");
        tokio::time::sleep(delay).await;
        true
    }
}

async fn connect_sink(db: &DbArgs, budget: Duration) -> anyhow::Result<PgSink> {
    let mut sink =
        PgSink::new(&db.database_url).context("check --database-url / LOGIN_ETL_DATABASE_URL")?;
    let mut retry = StartupRetry::new(budget);
    let applied = loop {
        match sink.migrate().await {
            Ok(applied) => break applied,
            Err(e) if !e.is_fatal() && retry.wait("PostgreSQL", &e).await => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot prepare the schema in {}", sink.target()))
            }
        }
    };
    tracing::info!(
        target = sink.target(),
        migrations_applied = applied,
        "database ready"
    );
    Ok(sink)
}

async fn connect_source(settings: &SqsSettings, budget: Duration) -> anyhow::Result<SqsSource> {
    let mut retry = StartupRetry::new(budget);
    loop {
        match SqsSource::connect(settings).await {
            Ok(source) => return Ok(source),
            Err(e) if !e.is_fatal() && retry.wait("SQS", &e).await => {}
            Err(e) => return Err(e).context("cannot open the queue"),
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let masker = match args.mask_strategy {
        StrategyName::Sha256 => {
            tracing::warn!(
                "--mask-strategy sha256 is unkeyed: every IPv4 mask can be reversed by hashing all \
                 2^32 addresses. Use it only to stay compatible with an existing table."
            );
            Masker::new(StrategyName::Sha256, None)?
        }
        keyed => {
            let keys = load_keys(&args.keys, Some(&args.sqs.sqs_endpoint)).await?;
            Masker::new(keyed, Some(&keys))?
        }
    };
    tracing::info!(strategy = masker.strategy(), "masking");

    let retry_budget = Duration::from_secs(args.write_retry_seconds);
    let sink = connect_sink(&args.db, retry_budget).await?;
    let settings = args.sqs.settings();
    let source = connect_source(&settings, retry_budget).await?;
    tracing::info!(
        queue_url = source.queue_url(),
        drain = args.drain,
        "consuming"
    );

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let pipeline_settings = PipelineSettings {
        batch_size: args.batch_size as usize,
        batch_max_wait: Duration::from_millis(args.batch_max_wait_ms),
        receivers: args.receivers as usize,
        wait_time: Duration::from_secs(args.wait_time_seconds),
        drain_idle: args
            .drain
            .then(|| Duration::from_secs(args.drain_idle_seconds)),
        max_receives: args.max_receives,
        write_retry_timeout: retry_budget,
        dead_letter_queue: args.dead_letter_queue.clone().filter(|url| !url.is_empty()),
    };
    let summary = pipeline::run(source, sink, masker, pipeline_settings, shutdown).await?;
    tracing::info!(%summary, "stopped");
    if args.drain {
        println!("{summary}");
    }
    Ok(())
}

/// First SIGINT/SIGTERM: stop receiving and finish the batch in flight. Second one: exit now
/// (nothing is lost: uncommitted messages come back after the visibility timeout).
async fn cancel_on_signal(shutdown: CancellationToken) {
    let mut count = 0;
    loop {
        if wait_for_signal().await.is_err() {
            return;
        }
        count += 1;
        if count == 1 {
            tracing::info!(
                "shutdown requested: finishing the batch in flight (signal again to abort)"
            );
            shutdown.cancel();
        } else {
            tracing::warn!("aborting; uncommitted messages will be redelivered by SQS");
            std::process::exit(130);
        }
    }
}

#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}

async fn migrate(args: DbArgs) -> anyhow::Result<()> {
    let sink = connect_sink(&args, Duration::from_secs(30)).await?;
    println!("schema is up to date in {}", sink.target());
    Ok(())
}

async fn send_sample(args: SendSampleArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.bad_share) {
        bail!(
            "--bad-share must be between 0.0 and 1.0, got {}",
            args.bad_share
        );
    }
    let bodies: Vec<String> = match args.count {
        Some(count) => sample::generate(&SampleSpec {
            count,
            bad_share: args.bad_share,
            seed: args.seed,
        }),
        None => SAMPLE_JSONL.lines().map(str::to_string).collect(),
    };
    if args.print {
        for body in &bodies {
            println!("{body}");
        }
        return Ok(());
    }
    let settings = args.sqs.settings();
    let source = if args.create_queue {
        SqsSource::create(&settings).await
    } else {
        SqsSource::connect(&settings).await
    }
    .context("cannot open the queue")?;
    let sent = source.send(&bodies).await.context("sending failed")?;
    println!("sent {} messages to {}", sent.len(), source.queue_url());
    Ok(())
}

async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let source = SqsSource::connect(&args.sqs.settings())
        .await
        .context("cannot open the queue")?;
    let depth = source.depth().await?;
    println!(
        "queue {}: {} visible, {} in flight",
        source.queue_url(),
        depth.visible,
        depth.in_flight
    );
    let mut sink = PgSink::new(&args.db.database_url)?;
    let counts = sink.counts().await.with_context(|| {
        format!(
            "cannot count rows in {} (has `migrate` run?)",
            sink.target()
        )
    })?;
    println!("user_logins: {} rows", counts.rows);
    let by_code: Vec<String> = counts
        .quarantined_by_code
        .iter()
        .map(|(code, n)| format!("{code}: {n}"))
        .collect();
    println!(
        "quarantined_messages: {}{}",
        counts.quarantined(),
        if by_code.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_code.join(", "))
        }
    );
    println!("processed_messages: {} message ids", counts.processed);
    Ok(())
}

async fn purge_queue(args: PurgeArgs) -> anyhow::Result<()> {
    if !args.yes {
        bail!("purge-queue deletes every message in the queue; pass --yes to confirm");
    }
    let source = SqsSource::connect(&args.sqs.settings())
        .await
        .context("cannot open the queue")?;
    source.purge().await?;
    println!("purged {}", source.queue_url());
    Ok(())
}

async fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let entry = match &args.kms_key_id {
        Some(kms_key_id) => {
            let endpoint = kms_endpoint(args.kms_endpoint.as_deref());
            Zeroizing::new(
                crate::kms::generate_entry(&args.id, kms_key_id, endpoint.as_deref()).await?,
            )
        }
        None => keys::generate(&args.id)?,
    };
    println!("{}", *entry);
    eprintln!(
        "Put this line first in LOGIN_ETL_MASK_KEY or the key file, keeping older keys after it \
         (they can still reveal their aes-siv masks). Store it like a password."
    );
    Ok(())
}

/// The operating-system user, for the audit trail.
fn os_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

async fn reveal(args: RevealArgs) -> anyhow::Result<()> {
    if args.reason.trim().is_empty() {
        bail!("--reason must say why the values are needed; it is stored in the audit trail");
    }
    // Refuse one-way masks before anything is read or audited.
    let given = args
        .value
        .iter()
        .chain(&args.masked_ip)
        .chain(&args.masked_device_id);
    for mask in given {
        let strategy = crate::mask::strategy_of(mask);
        if strategy != StrategyName::AesSiv {
            return Err(crate::mask::RevealError::OneWay(strategy.as_str()).into());
        }
    }
    let keys = load_keys(&args.keys, None).await?;
    let masker = Masker::new(StrategyName::AesSiv, Some(&keys))?;
    let mut sink = PgSink::new(&args.db.database_url)?;
    sink.migrate().await.context("cannot prepare the schema")?;
    let selector = match (&args.user_id, &args.masked_ip, &args.masked_device_id) {
        (Some(user), _, _) => Some(RevealSelector::UserId(user.clone())),
        (_, Some(mask), _) => Some(RevealSelector::MaskedIp(mask.clone())),
        (_, _, Some(mask)) => Some(RevealSelector::MaskedDeviceId(mask.clone())),
        _ => None,
    };
    let audit = RevealAudit {
        os_user: os_user(),
        actor: args.actor.clone().unwrap_or_else(os_user),
        reason: args.reason.clone(),
    };
    let extra: Vec<String> = args.value.iter().cloned().collect();
    let rows = sink
        .rows_for_reveal(selector.as_ref(), &extra, args.limit, &audit)
        .await
        .context("cannot read or audit the rows; nothing was revealed")?;

    let show = |field: Field, mask: Option<&str>| -> String {
        match mask {
            None => "-".into(),
            Some(mask) => masker
                .reveal(field, mask)
                .unwrap_or_else(|e| format!("<{e}>")),
        }
    };
    if let (Some(mask), Some(field)) = (&args.value, args.field) {
        let field = match field {
            FieldArg::Ip => Field::Ip,
            FieldArg::DeviceId => Field::DeviceId,
        };
        println!("{}", masker.reveal(field, mask)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no matching rows (the request was audited)");
        return Ok(());
    }
    println!("{:<38} {:<10} {:<40} device_id", "user_id", "date", "ip");
    for row in &rows {
        println!(
            "{:<38} {:<10} {:<40} {}",
            row.user_id,
            row.create_date.map(|d| d.to_string()).unwrap_or_default(),
            show(Field::Ip, row.masked_ip.as_deref()),
            show(Field::DeviceId, row.masked_device_id.as_deref()),
        );
    }
    eprintln!("revealed {} rows; audited in mask_reveals", rows.len());
    Ok(())
}

async fn report_duplicates(args: DuplicatesArgs) -> anyhow::Result<()> {
    let mut sink = PgSink::new(&args.db.database_url)?;
    let devices = sink
        .shared_devices(args.limit)
        .await
        .with_context(|| format!("cannot read user_logins in {}", sink.target()))?;
    let ips = sink.shared_ips(args.limit).await?;
    match args.format {
        ReportFormat::Json => {
            let report = serde_json::json!({ "shared_devices": devices, "shared_ips": ips });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        ReportFormat::Csv => {
            // Masks and counts contain no commas or quotes: no CSV escaping is needed.
            println!("kind,mask,users,devices,logins");
            for d in &devices {
                println!("device,{},{},1,{}", d.masked_device_id, d.users, d.logins);
            }
            for ip in &ips {
                println!(
                    "ip,{},{},{},{}",
                    ip.masked_ip, ip.users, ip.devices, ip.logins
                );
            }
        }
        ReportFormat::Table => {
            println!("Devices used by more than one user ({}):", devices.len());
            println!(
                "  {:<70} {:>6} {:>7}",
                "masked_device_id", "users", "logins"
            );
            for d in &devices {
                println!(
                    "  {:<70} {:>6} {:>7}",
                    d.masked_device_id, d.users, d.logins
                );
            }
            println!(
                "Addresses shared by several users or devices ({}):",
                ips.len()
            );
            println!(
                "  {:<70} {:>6} {:>8} {:>7}",
                "masked_ip", "users", "devices", "logins"
            );
            for ip in &ips {
                println!(
                    "  {:<70} {:>6} {:>8} {:>7}",
                    ip.masked_ip, ip.users, ip.devices, ip.logins
                );
            }
        }
    }
    Ok(())
}
