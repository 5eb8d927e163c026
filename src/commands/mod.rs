//! The subcommands, one file each with its own flags, wired to the library. This is the edge:
//! errors get context here (anyhow) and become one line a user can act on.

use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use url::Url;
use zeroize::Zeroizing;

use clap::Parser;

use crate::cli::{DbArgs, KeyArgs, LogFormat};
use crate::mask::{keys, KeyError, KeyRing};
use crate::retry::{Budget, Retry};
use crate::sink::PgConnection;
use crate::source::{SqsSettings, SqsSource};

// Declared here, not by `commands!`: rustfmt and other tools reach only modules they can see.
pub mod backfill;
pub mod check;
pub mod erase;
pub mod keygen;
pub mod migrate;
pub mod policy;
pub mod preview;
mod preview_queue;
pub mod privacy_report;
pub mod purge;
pub mod quarantine;
pub mod redrive;
pub mod rekey;
pub mod report;
pub mod retire_key;
pub mod reveal;
pub mod run;
mod run_policy;
pub mod send_sample;
pub mod shred;
pub mod status;

/// Environment variable holding the masking key ring.
const MASK_KEY_ENV: &str = "LOGIN_ETL_MASK_KEY";

/// Read user-login events from SQS, validate them, mask their PII (ip, device_id) and write them to
/// PostgreSQL in batches. Bad messages go to a quarantine table with a reason; nothing is dropped.
#[derive(Debug, Parser)]
#[command(name = "login-etl", version = crate::VERSION, propagate_version = true)]
pub struct Cli {
    /// Log lines on stderr: `text` for people, `json` (one object per line) for log shippers.
    #[arg(
        long,
        env = "LOGIN_ETL_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// What every command gets besides its own flags: the global flags and the shutdown signal.
/// (Not `Context`, which every command file also imports from anyhow.)
#[derive(Debug, Clone)]
pub struct Globals {
    /// How log lines are written (`run` hides its progress bar for JSON logs).
    pub log_format: LogFormat,
    /// Cancelled by the binary on SIGINT/SIGTERM.
    pub shutdown: CancellationToken,
}

/// The subcommands, one line each: `Variant(flags type) => module`, where `module` (a file of
/// this folder, declared above) has `execute(flags, Globals)`. Adding a command is a file, a
/// `pub mod` and a line here.
macro_rules! commands {
    ($( $(#[$doc:meta])* $variant:ident($args:ty) => $module:ident, )*) => {
        /// The subcommands.
        #[derive(Debug, clap::Subcommand)]
        pub enum Command {
            $( $(#[$doc])* $variant($args), )*
        }

        /// Run one subcommand to completion.
        pub async fn execute(command: Command, globals: Globals) -> anyhow::Result<()> {
            match command {
                $( Command::$variant(args) => $module::execute(args, globals).await, )*
            }
        }
    };
}

commands! {
    /// Consume the queue until SIGINT/SIGTERM (or, with --drain, until it is empty).
    ///
    /// Applies the schema first. On a signal it stops receiving, commits the batch in flight,
    /// deletes its messages and exits 0.
    Run(run::RunArgs) => run,
    /// Create or upgrade the schema (tables, indexes; numbered migrations, each applied once) and exit.
    Migrate(migrate::MigrateArgs) => migrate,
    /// Show the queue depth and what has landed in the database (`--format json` for scripts).
    Status(status::StatusArgs) => status,
    /// Quarantined messages: list them, or show one (bodies scrubbed of PII).
    Quarantine(quarantine::QuarantineArgs) => quarantine,
    /// Move dead letters back to the queue after a fix, each keeping its original id and first
    /// sending time, so it lands once and an erasure still holds (`--dry-run` counts them by
    /// reason). Audited.
    Redrive(redrive::RedriveArgs) => redrive,
    /// Load history from S3: one notification per object under s3://bucket/prefix on the queue,
    /// read by every consumer already running, each login landing once (`--dry-run` counts).
    Backfill(backfill::BackfillArgs) => backfill,
    /// Preflight, with the same flags and environment as `run`: credentials, queue and its
    /// settings, database, schema, the role's grants, keys. One line each, ✓ or ✗ with the fix;
    /// exits non-zero if anything is ✗.
    Check(run::RunArgs) => check,
    /// Delete every message in the queue (for resetting a development stack).
    PurgeQueue(purge::PurgeArgs) => purge,
    /// Print a new random masking key entry (`<id>:<hex>`, or `<id>:kms:<base64>` with
    /// --kms-key-id) in the format LOGIN_ETL_MASK_KEY and key files take.
    Keygen(keygen::KeygenArgs) => keygen,
    /// Turn aes-siv masks back into values, for an authorised operator; every use is audited in
    /// the mask_reveals table before anything is shown.
    Reveal(reveal::RevealArgs) => reveal,
    /// Reports over the masked data.
    Report(report::ReportArgs) => report,
    /// Privacy policy files: `policy check FILE` reads one offline and says what it stores of
    /// each field, or every problem with its line and fix.
    Policy(policy::PolicyArgs) => policy,
    /// What each login of a JSON-lines file would become under the policy (--policy; without
    /// one, today's behaviour): one JSON line each, its row or its quarantine reason. Nothing is
    /// written.
    Preview(preview::PreviewArgs) => preview,
    /// Erase one data subject: their rows and quarantine entries, in one audited transaction
    /// (`--dry-run` counts first). The ledger keeps the message ids, so a redelivery adds nothing.
    Erase(erase::EraseArgs) => erase,
    /// Crypto-shredding: destroy the random keys of every period ending by --before, so the
    /// aes-siv values a policy sealed under them can never be revealed again; rows and one-way
    /// columns stay. Asks first (--yes skips), audited.
    Shred(shred::ShredArgs) => shred,
    /// Re-encrypt aes-siv and ipcrypt-pfx values written under older keys to --to, in small
    /// resumable transactions, audited. hmac masks are one-way and cannot be re-keyed.
    Rekey(rekey::RekeyArgs) => rekey,
    /// Check that a key id masks nothing any more before it leaves the key ring; refused with the
    /// counts while rows still use it.
    RetireKey(retire_key::RetireKeyArgs) => retire_key,
    /// Put the bundled 100-message sample (or N synthetic messages) on the queue.
    SendSample(send_sample::SendSampleArgs) => send_sample,
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
    crate::mask::kms::decrypt_entries(entries, endpoint.as_ref()).await
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
/// reachable yet (for at most `budget`); anything else stops at once. The caller makes the
/// connection the type it needs: the writer (`run`) or the operator's (`migrate`).
async fn connect_database(
    db: &DbArgs,
    budget: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<PgConnection> {
    let mut database = PgConnection::new(&db.settings())
        .context("check --database-url / LOGIN_ETL_DATABASE_URL")?;
    let mut retry = Retry::new(
        "startup",
        "PostgreSQL not reachable yet",
        Budget::Time(budget),
        shutdown,
    );
    let applied = loop {
        match database.migrate().await {
            Ok(applied) => break applied,
            Err(e) => retry
                .after(e)
                .await
                .with_context(|| format!("cannot prepare the schema in {}", database.target()))?,
        }
    };
    tracing::info!(
        target = database.target(),
        migrations_applied = applied,
        "database ready"
    );
    Ok(database)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_url_never_prints() {
        let args = Cli::try_parse_from([
            "login-etl",
            "migrate",
            "--database-url",
            "postgres://u:hunter2@db/x",
        ])
        .unwrap();
        assert!(!format!("{args:?}").contains("hunter2"));
    }
}
