//! `login-etl report duplicates|keys`: devices and addresses shared by several users, and which
//! key ids still mask which rows.

use anyhow::Context;

use clap::{Args, Subcommand};

use super::Globals;
use crate::cli::{DbArgs, ReportFormat};
use crate::safe_text::{escape, escape_json};
use crate::sink::{PgOperator, SharedDevice, SharedIp};

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
    /// The privacy report: the policy in force, keys and what they mask, reveal and erase counts
    /// from the audit, and an attack against the live table (an IPv4 network and a device-id
    /// pattern hashed without the key): keyed masks give nothing, `sha256` ones fall.
    Privacy(super::privacy_report::PrivacyReportArgs),
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

pub(super) async fn execute(args: ReportArgs, _: Globals) -> anyhow::Result<()> {
    match args.report {
        ReportKind::Duplicates(args) => duplicates(args).await,
        ReportKind::Keys(args) => keys(args).await,
        ReportKind::Privacy(args) => super::privacy_report::execute(args).await,
    }
}

async fn duplicates(args: DuplicatesArgs) -> anyhow::Result<()> {
    let mut database = PgOperator::new(&args.db.settings())?;
    let devices = database
        .shared_devices(args.limit)
        .await
        .with_context(|| format!("cannot read user_logins in {}", database.target()))?;
    let ips = database.shared_ips(args.limit).await?;
    let networks = database.shared_networks(args.limit).await?;
    let scoped = scoped_columns(database.policy_in_force().await?);
    match args.format {
        ReportFormat::Json => {
            let report = serde_json::json!({
                "shared_devices": devices,
                "shared_ips": ips,
                "shared_networks": networks,
                "linked_within": scoped.iter()
                    .map(|(column, scope, _)| (column.clone(), scope.clone()))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            });
            println!("{}", escape_json(&serde_json::to_string_pretty(&report)?));
        }
        ReportFormat::Csv => {
            print_csv(&devices, &ips);
            for n in &networks {
                println!("network,{},{},,{}", escape(&n.network), n.users, n.logins);
            }
        }
        ReportFormat::Table => {
            for (column, scope, policy) in &scoped {
                println!(
                    "{column} pseudonyms link only within one {scope} (policy {policy}): \
                     a value seen in two {scope}s counts as two here, each with its period"
                );
            }
            print_table(&devices, &ips);
            println!("Networks shared by several users ({}):", networks.len());
            println!(
                "  {:<70} {:>6} {:>7}",
                "network pseudonym", "users", "logins"
            );
            for n in &networks {
                println!(
                    "  {:<70} {:>6} {:>7}{}",
                    escape(&n.network),
                    n.users,
                    n.logins,
                    in_period(&n.period)
                );
            }
        }
    }
    Ok(())
}

/// `(column, scope, policy)` of each mask column the policy in force scopes to a period.
fn scoped_columns(
    in_force: Option<crate::sink::postgres::PolicyInForce>,
) -> Vec<(String, String, String)> {
    let Some(policy) = in_force else {
        return Vec::new();
    };
    (policy.columns.iter())
        .filter_map(|(column, held)| {
            let (_, scope) = held.split_once('/')?;
            Some((
                column.clone(),
                scope.to_string(),
                policy.fingerprint.clone(),
            ))
        })
        .collect()
}

/// `  in 2026-01` after a line whose rows are all of one period.
fn in_period(period: &Option<String>) -> String {
    period
        .as_deref()
        .map(|p| format!("  in {}", escape(p)))
        .unwrap_or_default()
}

/// Our masks and counts contain no commas or quotes; control characters are escaped all the same
/// (a table may hold rows written by something else).
fn print_csv(devices: &[SharedDevice], ips: &[SharedIp]) {
    println!("kind,mask,users,devices,logins");
    for d in devices {
        println!(
            "device,{},{},1,{}",
            escape(&d.masked_device_id),
            d.users,
            d.logins
        );
    }
    for ip in ips {
        println!(
            "ip,{},{},{},{}",
            escape(&ip.masked_ip),
            ip.users,
            ip.devices,
            ip.logins
        );
    }
}

fn print_table(devices: &[SharedDevice], ips: &[SharedIp]) {
    println!("Devices used by more than one user ({}):", devices.len());
    println!(
        "  {:<70} {:>6} {:>7}",
        "masked_device_id", "users", "logins"
    );
    for d in devices {
        println!(
            "  {:<70} {:>6} {:>7}{}",
            escape(&d.masked_device_id),
            d.users,
            d.logins,
            in_period(&d.period)
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
    for ip in ips {
        println!(
            "  {:<70} {:>6} {:>8} {:>7}{}",
            escape(&ip.masked_ip),
            ip.users,
            ip.devices,
            ip.logins,
            in_period(&ip.period)
        );
    }
}

/// `report keys`: per column, each key id with its rows and first/last date.
async fn keys(args: KeysReportArgs) -> anyhow::Result<()> {
    let mut database = PgOperator::new(&args.db.settings())?;
    let usage = database
        .key_usage()
        .await
        .with_context(|| format!("cannot read user_logins in {}", database.target()))?;
    let date = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    match args.format {
        ReportFormat::Json => println!("{}", escape_json(&serde_json::to_string_pretty(&usage)?)),
        ReportFormat::Csv => {
            println!("column,key_id,rows,first,last");
            for u in &usage {
                println!(
                    "{},{},{},{},{}",
                    u.column,
                    escape(&u.key_id),
                    u.rows,
                    date(u.first),
                    date(u.last)
                );
            }
        }
        ReportFormat::Table => {
            println!(
                "{:<22} {:<17} {:>10} {:<10} {:<10}",
                "column", "key id", "rows", "first", "last"
            );
            for u in &usage {
                println!(
                    "{:<22} {:<17} {:>10} {:<10} {:<10}",
                    u.column,
                    escape(&u.key_id),
                    u.rows,
                    date(u.first),
                    date(u.last)
                );
            }
        }
    }
    Ok(())
}
