//! `login-etl report privacy`: the policy in force, the keys and what they mask, the audit's
//! counts, and an attack run against the live table (an enumerable space hashed without the
//! key, looked for among the stored masks). Table or JSON.

use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::policy::load_policy;
use crate::cli::{DbArgs, PolicyFileArgs, ReportFormat};
use crate::policy::attack::{Finding, Space};
use crate::safe_text::{escape, escape_json};
use crate::sink::PgOperator;

/// `report privacy` options.
#[derive(Debug, Clone, Args)]
pub struct PrivacyReportArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub policy: PolicyFileArgs,
    /// The IPv4 network whose every address is hashed without the key and looked for among the
    /// stored `masked_ip` values (/8 to /32; a /16 is 65,536 candidates).
    #[arg(long, default_value = "10.0.0.0/16")]
    pub attack_ipv4: String,
    /// A device-id pattern whose every value (each `#` a digit, at most 7) is hashed and looked
    /// for among the stored `masked_device_id` values (default: the take-home's shape, 10^6 values).
    #[arg(long, default_value = "593-##-####")]
    pub attack_device_id: String,
    /// Most distinct masks per column the attack reads.
    #[arg(long, default_value_t = 100_000)]
    pub sample: i64,
    /// Output format (`csv` is like `table`).
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

pub(super) async fn execute(args: PrivacyReportArgs) -> anyhow::Result<()> {
    let policy = load_policy(&args.policy)?;
    let ipv4 =
        Space::parse_ipv4(&args.attack_ipv4).map_err(|e| anyhow::anyhow!("--attack-ipv4: {e}"))?;
    let devices = Space::parse_digits(&args.attack_device_id)
        .map_err(|e| anyhow::anyhow!("--attack-device-id: {e}"))?;
    let mut database = PgOperator::new(&args.db.settings())?;
    let keys = database
        .key_usage()
        .await
        .with_context(|| format!("cannot read user_logins in {}", database.target()))?;
    let audit = database.audit_counts().await?;
    let mut attacks = Vec::new();
    for (column, space, stated) in [
        ("masked_ip", &ipv4, &args.attack_ipv4),
        ("masked_device_id", &devices, &args.attack_device_id),
    ] {
        let masks = database.mask_sample(column, args.sample.max(1)).await?;
        let findings = space.attack(masks.iter().map(String::as_str));
        attacks.push((column, stated.as_str(), space.size(), findings));
    }
    let fields = policy.describe();
    if args.format == ReportFormat::Json {
        let report = json!({
            "policy": { "fingerprint": policy.fingerprint(), "applied_by_run": policy == crate::policy::Policy::seed(), "fields": fields },
            "keys": keys,
            "shredded_periods": [],
            "audit": audit.iter().map(|(what, n)| json!({"operation": what, "count": n})).collect::<Vec<_>>(),
            "attacks": attacks.iter().map(|(column, space, size, findings)| json!({
                "column": column, "space": space, "candidates": size,
                "method": "unkeyed SHA-256 of every candidate, against each mask whole and after its key id",
                "findings": findings,
            })).collect::<Vec<_>>(),
        });
        println!("{}", escape_json(&serde_json::to_string_pretty(&report)?));
        return Ok(());
    }
    let applied = match policy == crate::policy::Policy::seed() {
        true => "what run stores",
        false => "not what run stores yet: run applies examples/policies/seed.toml",
    };
    println!("Policy {} ({applied}):", policy.fingerprint());
    for f in &fields {
        println!(
            "  {:<12} → {:<18} {}; links {}",
            f.field, f.column, f.stored, f.links
        );
    }
    println!("Keys (rows per column and key id):");
    for k in &keys {
        let date = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
        println!(
            "  {:<22} {:<17} {:>10}  {} .. {}",
            k.column,
            escape(&k.key_id),
            k.rows,
            date(k.first),
            date(k.last)
        );
    }
    println!("Shredded periods: none");
    println!("Audit:");
    for (what, n) in &audit {
        println!("  {what:<22} {n:>10}");
    }
    println!("Attack without the key (unkeyed SHA-256 of every candidate, against each mask whole and after its key id):");
    for (column, space, size, findings) in &attacks {
        println!(
            "  {column} against {space} ({size} candidates): {}",
            summary(findings)
        );
    }
    Ok(())
}

fn summary(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "no masks stored".into();
    }
    let parts: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "{} of {} {} masks recovered",
                f.recovered, f.masks, f.strategy
            )
        })
        .collect();
    parts.join("; ")
}
