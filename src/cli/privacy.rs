//! Flags of the privacy commands: `keygen`, `reveal`, `report`, `erase`, `rekey`, `retire-key`.

use clap::{Args, Subcommand};

use super::{DbArgs, KeyArgs, KmsArgs};
use crate::mask::Field;
use crate::sink::RevealRequest;

/// `keygen` options.
#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    /// Key id, written before every mask made with this key; use a new id for each rotation.
    #[arg(long, default_value = "k1")]
    pub id: String,
    /// Generate the key as an AWS KMS data key under this KMS key (id, ARN or alias/…): only its
    /// encrypted form is printed, and `run` decrypts it with kms:Decrypt at start.
    #[arg(long)]
    pub kms_key_id: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub kms: KmsArgs,
}

/// `reveal` options.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("select").required(true)
    .args(["value", "user_id", "masked_ip", "masked_device_id"])))]
pub struct RevealArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: KeyArgs,
    /// Why the values are needed (e.g. a ticket or legal request); stored in the audit row.
    #[arg(long, required = true)]
    pub reason: String,
    /// Who is accountable, if not the OS user running the command.
    #[arg(long)]
    pub actor: Option<String>,
    /// Reveal one mask given on the command line (with --field).
    #[arg(long, requires = "field")]
    pub value: Option<String>,
    /// Which field --value is a mask of.
    #[arg(long, value_enum)]
    pub field: Option<Field>,
    /// Reveal the ip and device_id of every row of this user.
    #[arg(long)]
    pub user_id: Option<String>,
    /// Reveal the address behind this IP mask (and the devices of its rows).
    #[arg(long)]
    pub masked_ip: Option<String>,
    /// Reveal the device behind this device mask (and the addresses of its rows).
    #[arg(long)]
    pub masked_device_id: Option<String>,
    /// Most rows to reveal.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

/// `report` options.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Which report.
    #[command(subcommand)]
    pub report: ReportKind,
}

/// The reports.
#[derive(Debug, Clone, Subcommand)]
pub enum ReportKind {
    /// Masked device ids used by more than one user, and masked IPs shared by several users or
    /// devices, with counts: what deterministic masks are for.
    Duplicates(DuplicatesArgs),
    /// Per column (masked_ip, masked_device_id, masked_ip_network, quarantine bodies), each key id
    /// with its row count and first/last date: when can an old key be retired?
    Keys(KeysReportArgs),
}

/// `report duplicates` options.
#[derive(Debug, Clone, Args)]
pub struct DuplicatesArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
    /// Most entries per section.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

/// Output formats of reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned text for people.
    Table,
    /// One JSON document.
    Json,
    /// CSV with a `kind` column (device or ip).
    Csv,
}

impl RevealArgs {
    /// What to reveal; clap's `select` group guarantees exactly one selector.
    pub fn request(&self) -> Option<RevealRequest> {
        if let (Some(mask), Some(field)) = (&self.value, self.field) {
            return Some(RevealRequest::Value {
                mask: mask.clone(),
                field,
            });
        }
        let user = self.user_id.clone().map(RevealRequest::UserId);
        let ip = || self.masked_ip.clone().map(RevealRequest::MaskedIp);
        let device = || {
            self.masked_device_id
                .clone()
                .map(RevealRequest::MaskedDeviceId)
        };
        user.or_else(ip).or_else(device)
    }
}

/// `erase` options.
#[derive(Debug, Clone, Args)]
pub struct EraseArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    /// The masking keys: the audit row records a keyed fingerprint of the user id, never the id.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// The data subject: every `user_logins` row and quarantine entry of this user id goes.
    #[arg(long)]
    pub user_id: String,
    /// Why (the request's reference); stored in the audit row with the counts, never the user id.
    #[arg(long)]
    pub reason: String,
    /// Who is accountable, if not the OS user running the command.
    #[arg(long)]
    pub actor: Option<String>,
    /// Count what would go, change nothing, record nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `rekey` options.
#[derive(Debug, Clone, Args)]
pub struct RekeyArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: KeyArgs,
    /// The key to re-encrypt to (it must be in the key ring; normally the active one).
    #[arg(long)]
    pub to: String,
    /// Only values under this key (default: every key but --to).
    #[arg(long)]
    pub from: Option<String>,
    /// Rows per transaction; a killed run resumes where it stopped.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub batch: u32,
    /// Why; stored in the audit row.
    #[arg(long, default_value = "key rotation")]
    pub reason: String,
    /// Who is accountable, if not the OS user running the command.
    #[arg(long)]
    pub actor: Option<String>,
}

/// `retire-key` options.
#[derive(Debug, Clone, Args)]
pub struct RetireKeyArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    /// The key id to retire from the key ring.
    #[arg(long)]
    pub id: String,
}

/// `report keys` options.
#[derive(Debug, Clone, Args)]
pub struct KeysReportArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    /// Output format (`csv` is like `table`, comma-separated).
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}
