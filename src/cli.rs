//! Command-line interface. Every flag can also be set from an environment variable, so the same
//! binary is configured by flags on a laptop and by env vars in a container.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use url::Url;

use crate::mask::{NetworkMaskMode, NetworkPrefixes, StrategyName};
use crate::pipeline::PipelineSettings;
use crate::sink::DatabaseUrl;
use crate::source::{SqsProtocol, SqsSettings};

mod ops;
mod privacy;
pub use ops::{
    QuarantineArgs, QuarantineCommand, QuarantineListArgs, QuarantineShowArgs, StatusArgs,
    StatusFormat,
};
pub use privacy::{
    DuplicatesArgs, EraseArgs, KeygenArgs, KeysReportArgs, RekeyArgs, ReportArgs, ReportFormat,
    ReportKind, RetireKeyArgs, RevealArgs,
};

/// Read user-login events from SQS, validate them, mask their PII (ip, device_id) and write them to
/// PostgreSQL in batches. Bad messages go to a quarantine table with a reason; nothing is dropped.
#[derive(Debug, Parser)]
#[command(name = "login-etl", version, propagate_version = true)]
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

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (timestamp, level, target, message, fields).
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume the queue until SIGINT/SIGTERM (or, with --drain, until it is empty).
    ///
    /// Applies the schema first. On a signal it stops receiving, commits the batch in flight,
    /// deletes its messages and exits 0.
    Run(RunArgs),
    /// Create or upgrade the schema (tables, indexes; numbered migrations, each applied once) and exit.
    Migrate(MigrateArgs),
    /// Show the queue depth and what has landed in the database (`--format json` for scripts).
    Status(StatusArgs),
    /// Quarantined messages: list them, or show one (bodies with their PII masked).
    Quarantine(QuarantineArgs),
    /// Preflight, with the same flags and environment as `run`: credentials, queue and its
    /// settings, database, schema, the role's grants, keys. One line each, ✓ or ✗ with the fix;
    /// exits non-zero if anything is ✗.
    Check(RunArgs),
    /// Delete every message in the queue (for resetting a development stack).
    PurgeQueue(PurgeArgs),
    /// Print a new random masking key entry (`<id>:<hex>`, or `<id>:kms:<base64>` with
    /// --kms-key-id) in the format LOGIN_ETL_MASK_KEY and key files take.
    Keygen(KeygenArgs),
    /// Turn aes-siv masks back into values, for an authorised operator; every use is audited in
    /// the mask_reveals table before anything is shown.
    Reveal(RevealArgs),
    /// Reports over the masked data.
    Report(ReportArgs),
    /// Erase one data subject: their rows and quarantine entries, in one audited transaction
    /// (`--dry-run` counts first). The ledger keeps the message ids, so a redelivery adds nothing.
    Erase(EraseArgs),
    /// Re-encrypt aes-siv and ipcrypt-pfx values written under older keys to --to, in small
    /// resumable transactions, audited. hmac masks are one-way and cannot be re-keyed.
    Rekey(RekeyArgs),
    /// Check that a key id masks nothing any more before it leaves the key ring; refused with the
    /// counts while rows still use it.
    RetireKey(RetireKeyArgs),
    /// Put the bundled 100-message sample (or N synthetic messages) on the queue.
    SendSample(SendSampleArgs),
}

/// Where the queue is.
#[derive(Debug, Clone, Args)]
pub struct SqsArgs {
    /// SQS endpoint URL, e.g. http://127.0.0.1:4566 for LocalStack. Empty: real AWS, with the default
    /// credential chain (env, profile, instance/task role).
    #[arg(
        long,
        env = "LOGIN_ETL_SQS_ENDPOINT",
        default_value = "",
        hide_default_value = true
    )]
    pub sqs_endpoint: Endpoint,
    /// AWS region. Default: from the AWS config chain; us-east-1 with a custom endpoint.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Full queue URL. Takes precedence over --queue-name.
    #[arg(long, env = "LOGIN_ETL_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// Queue name, resolved to a URL at start.
    #[arg(long, env = "LOGIN_ETL_QUEUE_NAME", default_value = "login-queue")]
    pub queue_name: String,
    /// SQS wire protocol. `auto` speaks JSON and switches to the older query protocol when the
    /// endpoint speaks only that (LocalStack before 3.0, as in the take-home's docker-compose);
    /// AWS itself is never switched.
    #[arg(long, env = "LOGIN_ETL_SQS_PROTOCOL", value_enum, default_value_t = SqsProtocol::Auto)]
    pub sqs_protocol: SqsProtocol,
}

/// Network pseudonyms (`masked_ip_network`).
#[derive(Debug, Clone, Args)]
pub struct NetworkArgs {
    /// Also store a pseudonym of each address's network, so logins can be grouped by network
    /// without seeing addresses: `hmac` (keyed mask of the /24 or /48, one-way; leaks only "same
    /// network or not") or `ipcrypt-pfx` (prefix-preserving encryption; every shared prefix length
    /// shows, reversible by key holders with `reveal`). See README "Network pseudonyms".
    #[arg(long, env = "LOGIN_ETL_IP_NETWORK_MASK", value_enum, default_value_t = NetworkMaskMode::Off)]
    pub ip_network_mask: NetworkMaskMode,
    /// IPv4 prefix length `hmac` groups by.
    #[arg(long, env = "LOGIN_ETL_IPV4_NETWORK_PREFIX", default_value_t = 24,
          value_parser = clap::value_parser!(u8).range(1..=32))]
    pub ipv4_network_prefix: u8,
    /// IPv6 prefix length `hmac` groups by.
    #[arg(long, env = "LOGIN_ETL_IPV6_NETWORK_PREFIX", default_value_t = 48,
          value_parser = clap::value_parser!(u8).range(1..=128))]
    pub ipv6_network_prefix: u8,
}

impl NetworkArgs {
    /// The prefix lengths as settings.
    pub fn prefixes(&self) -> NetworkPrefixes {
        NetworkPrefixes {
            v4: self.ipv4_network_prefix,
            v6: self.ipv6_network_prefix,
        }
    }
}

/// `migrate` options.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    /// Turn `user_logins` into monthly range partitions by `create_date` (one transaction that
    /// copies an existing table; writers wait meanwhile). Once partitioned, `migrate` and `run`
    /// keep the coming months' partitions created. Off by default; see docs/partitioning.md.
    #[arg(long)]
    pub partition_by_month: bool,
    /// With a partitioned table: also create the monthly partitions from this date's month on
    /// (YYYY-MM-DD), before backfilling older data (rows with no partition land in DEFAULT).
    #[arg(long, value_name = "DATE")]
    pub partitions_from: Option<chrono::NaiveDate>,
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL URL, e.g. postgres://login_etl@db.internal:5432/analytics. Prefer the env var when
    /// it contains a password: flags are visible in `ps`.
    #[arg(
        long,
        env = "LOGIN_ETL_DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: DatabaseUrl,
    /// PEM file of the CA certificates that sign the database's certificate (e.g. the RDS CA
    /// bundle, which is not in system stores); replaces the system roots. `sslrootcert=` in the
    /// URL wins. Without `sslmode` in the URL, a host off this machine is verified in full.
    #[arg(long, env = "LOGIN_ETL_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
}

impl DbArgs {
    /// A sink for this database (no connection yet).
    pub fn sink(&self) -> Result<crate::sink::PgSink, crate::sink::SinkError> {
        crate::sink::PgSink::with_ca_file(
            self.database_url.expose(),
            self.database_ca_file.as_deref(),
        )
    }
}

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
    pub mask_strategy: StrategyName,
    /// Exit 0 once the queue stays empty for --drain-idle-seconds, printing a summary.
    #[arg(long, env = "LOGIN_ETL_DRAIN")]
    pub drain: bool,
    /// With --drain: how long a receive must come back empty before the queue counts as drained.
    #[arg(long, env = "LOGIN_ETL_DRAIN_IDLE_SECONDS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=20))]
    pub drain_idle_seconds: u64,
    /// Most messages per transaction. 500 rows are one cheap binary COPY; larger batches gain little
    /// and hold more messages in flight.
    #[arg(long, env = "LOGIN_ETL_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_size: u64,
    /// Longest a message waits for its batch to fill, in milliseconds: bounds latency for a trickle.
    #[arg(long, env = "LOGIN_ETL_BATCH_MAX_WAIT_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub batch_max_wait_ms: u64,
    /// Concurrent long-polling receivers (each gets up to 10 messages per call).
    #[arg(long, env = "LOGIN_ETL_RECEIVERS", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub receivers: u64,
    /// Long-poll wait per receive call, in seconds (SQS maximum 20).
    #[arg(long, env = "LOGIN_ETL_WAIT_TIME_SECONDS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=20))]
    pub wait_time_seconds: u64,
    /// A message delivered more than this many times is quarantined instead of retried again.
    #[arg(long, env = "LOGIN_ETL_MAX_RECEIVES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
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
    #[arg(long, env = "LOGIN_ETL_WRITE_RETRY_SECONDS", default_value_t = 300)]
    pub write_retry_seconds: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub network: NetworkArgs,
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
}

/// Where the masking keys are.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// File with the masking keys, one `<id>:<hex>` (or `<id>:kms:<base64>`) per line, the active
    /// key first. The keys can instead be given in the environment as LOGIN_ETL_MASK_KEY (entries
    /// separated by commas) — never as a flag, so they stay out of shell history and `ps`. Make a
    /// key with `login-etl keygen`.
    #[arg(long, env = "LOGIN_ETL_MASK_KEY_FILE")]
    pub mask_key_file: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub kms: KmsArgs,
}

/// Where AWS KMS is, for `kms:` keys.
#[derive(Debug, Clone, Args)]
pub struct KmsArgs {
    /// AWS KMS endpoint for `kms:` keys (LocalStack URL). Default: the SQS endpoint
    /// (--sqs-endpoint / LOGIN_ETL_SQS_ENDPOINT), else AWS.
    #[arg(
        long,
        env = "LOGIN_ETL_KMS_ENDPOINT",
        default_value = "",
        hide_default_value = true
    )]
    pub kms_endpoint: Endpoint,
}

/// `send-sample` options.
#[derive(Debug, Clone, Args)]
pub struct SendSampleArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sqs: SqsArgs,
    /// Generate this many synthetic messages instead of sending the bundled 100-message sample.
    #[arg(long)]
    pub count: Option<usize>,
    /// With --count: share of deliberately bad messages (0.0 to 1.0).
    #[arg(long, default_value_t = 0.01)]
    pub bad_share: f64,
    /// With --count: random seed; the same seed gives the same messages.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Create the queue first if it does not exist.
    #[arg(long)]
    pub create_queue: bool,
    /// Print the messages as JSON lines instead of sending them (no queue needed).
    #[arg(long)]
    pub print: bool,
}

/// `purge-queue` options.
#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sqs: SqsArgs,
    /// Confirm: without it nothing is deleted.
    #[arg(long)]
    pub yes: bool,
}

/// An endpoint URL; empty means "none" (real AWS), so `LOGIN_ETL_SQS_ENDPOINT=` can unset it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint(pub Option<Url>);

impl std::str::FromStr for Endpoint {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self(None));
        }
        let url =
            Url::parse(text).map_err(|e| format!("{e} (expected e.g. http://127.0.0.1:4566)"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err("expected an http:// or https:// URL, e.g. http://127.0.0.1:4566".into());
        }
        Ok(Self(Some(url)))
    }
}

impl From<&SqsArgs> for SqsSettings {
    fn from(args: &SqsArgs) -> Self {
        SqsSettings {
            endpoint: args.sqs_endpoint.0.clone(),
            region: args.region.clone().filter(|r| !r.trim().is_empty()),
            queue_url: args.queue_url.clone().filter(|u| !u.trim().is_empty()),
            queue_name: args.queue_name.clone(),
            protocol: args.sqs_protocol,
        }
    }
}

impl From<&RunArgs> for PipelineSettings {
    fn from(args: &RunArgs) -> Self {
        PipelineSettings {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_endpoint_means_none_and_a_bad_one_is_refused() {
        assert_eq!("".parse::<Endpoint>().unwrap(), Endpoint(None));
        assert!("http://127.0.0.1:4566"
            .parse::<Endpoint>()
            .unwrap()
            .0
            .is_some());
        assert!("127.0.0.1:4566".parse::<Endpoint>().is_err());
    }

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
