//! The subcommands, one file each, wired from CLI arguments to the library. This is the edge:
//! errors get context here (anyhow) and become one line a user can act on.

mod check;
mod erase;
mod keygen;
mod keys_usage;
mod migrate;
mod purge;
mod quarantine;
mod rekey;
mod report;
mod reveal;
mod run;
mod send_sample;
mod status;

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use url::Url;
use zeroize::Zeroizing;

use crate::cli::{Command, DbArgs, KeyArgs, LogFormat, ReportKind};
use crate::mask::{keys, KeyError, KeyRing};
use crate::retry::{Budget, Retry};
use crate::sink::PgSink;
use crate::source::{SqsSettings, SqsSource};

/// Environment variable holding the masking key ring.
const MASK_KEY_ENV: &str = "LOGIN_ETL_MASK_KEY";

/// Run one subcommand to completion. `shutdown` is cancelled by the binary on SIGINT/SIGTERM.
pub async fn execute(
    command: Command,
    log_format: LogFormat,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run::run(args, log_format, shutdown).await,
        Command::Migrate(args) => migrate::migrate(args, shutdown).await,
        Command::SendSample(args) => send_sample::send_sample(args).await,
        Command::Status(args) => status::status(args).await,
        Command::Quarantine(args) => quarantine::quarantine(args.command).await,
        Command::Check(args) => check::check(args).await,
        Command::PurgeQueue(args) => purge::purge_queue(args).await,
        Command::Keygen(args) => keygen::keygen(args).await,
        Command::Reveal(args) => reveal::reveal(args).await,
        Command::Report(args) => match args.report {
            ReportKind::Duplicates(args) => report::duplicates(args).await,
            ReportKind::Keys(args) => keys_usage::report(args).await,
        },
        Command::Erase(args) => erase::erase(args).await,
        Command::Rekey(args) => rekey::rekey(args, shutdown).await,
        Command::RetireKey(args) => keys_usage::retire(args).await,
    }
}

/// The key ring from `LOGIN_ETL_MASK_KEY`, else from the key file; `kms:` entries are decrypted
/// with AWS KMS (at `--kms-endpoint`, else the SQS endpoint, else AWS).
async fn load_keys(args: &KeyArgs, sqs_endpoint: Option<&Url>) -> Result<KeyRing, KeyError> {
    let text = match std::env::var(MASK_KEY_ENV) {
        Ok(keys) if !keys.trim().is_empty() => {
            if let Some(path) = &args.mask_key_file {
                tracing::warn!(
                    file = %path.display(),
                    "both {MASK_KEY_ENV} and a masking key file are set: {MASK_KEY_ENV} wins, the file is not read"
                );
            }
            Zeroizing::new(keys)
        }
        _ => match &args.mask_key_file {
            Some(path) => keys::read_file(path)?,
            None => return Err(KeyError::Missing),
        },
    };
    let entries = keys::parse_entries(&text)?;
    let endpoint = kms_endpoint(args.kms.kms_endpoint.0.as_ref(), sqs_endpoint);
    crate::kms::decrypt_entries(entries, endpoint.as_ref()).await
}

/// The KMS endpoint: the one given, else the SQS endpoint (one LocalStack serves both; commands
/// without SQS flags read LOGIN_ETL_SQS_ENDPOINT), else AWS.
fn kms_endpoint(given: Option<&Url>, sqs_endpoint: Option<&Url>) -> Option<Url> {
    given.or(sqs_endpoint).cloned().or_else(|| {
        std::env::var("LOGIN_ETL_SQS_ENDPOINT")
            .ok()
            .and_then(|e| e.parse::<crate::cli::Endpoint>().ok())
            .and_then(|e| e.0)
    })
}

/// Connect to PostgreSQL and bring the schema up to date, retrying while the server is not
/// reachable yet (for at most `budget`); anything else stops at once.
async fn connect_sink(
    db: &DbArgs,
    budget: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<PgSink> {
    let mut sink = db
        .sink()
        .context("check --database-url / LOGIN_ETL_DATABASE_URL")?;
    let mut retry = Retry::new(
        "startup",
        "PostgreSQL not reachable yet",
        Budget::Time(budget),
        shutdown,
    );
    let applied = loop {
        match sink.migrate().await {
            Ok(applied) => break applied,
            Err(e) => retry
                .after(e)
                .await
                .with_context(|| format!("cannot prepare the schema in {}", sink.target()))?,
        }
    };
    tracing::info!(
        target = sink.target(),
        migrations_applied = applied,
        "database ready"
    );
    Ok(sink)
}

/// Open the queue, retrying while SQS is not reachable yet (for at most `budget`).
async fn connect_source(
    settings: &SqsSettings,
    budget: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<SqsSource> {
    let mut retry = Retry::new(
        "startup",
        "SQS not reachable yet",
        Budget::Time(budget),
        shutdown,
    );
    loop {
        match SqsSource::connect(settings).await {
            Ok(source) => return Ok(source),
            Err(e) => retry.after(e).await.context("cannot open the queue")?,
        }
    }
}

/// Open the queue once (for one-shot commands).
async fn open_queue(settings: &SqsSettings) -> anyhow::Result<SqsSource> {
    SqsSource::connect(settings)
        .await
        .context("cannot open the queue")
}

/// The operating-system user, for the audit trail.
pub(super) fn os_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}
