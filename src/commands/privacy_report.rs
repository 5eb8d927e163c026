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
    let in_force = database.policy_in_force().await?;
    let periods = database.periods().await?;
    let retention = database.last_retention().await?;
    let (period_keys, horizon) = database.period_key_report().await?;
    let (shredded, live): (Vec<_>, Vec<_>) =
        period_keys.iter().partition(|k| k.shredded_at.is_some());
    let recorded = match &in_force {
        Some(p) if p.fingerprint == policy.fingerprint() => format!(
            "in force: recorded by run since {}",
            p.since.format("%Y-%m-%d")
        ),
        Some(p) => format!(
            "NOT in force: run writes under {} (since {}); pass its file with --policy to see it",
            p.fingerprint,
            p.since.format("%Y-%m-%d")
        ),
        None if policy == crate::policy::Policy::seed() => {
            "what run stores without a policy file (none recorded)".to_string()
        }
        None => "NOT in force: no policy recorded; run stores what seed.toml says".to_string(),
    };
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
            "policy": { "fingerprint": policy.fingerprint(), "fields": fields,
                "in_force": in_force.as_ref().map(|p| json!({"fingerprint": p.fingerprint, "since": p.since})),
                "status": recorded },
            "keys": keys,
            "periods": periods.iter().map(|(period, rows)| json!({"period": period, "rows": rows})).collect::<Vec<_>>(),
            "period_keys": live.iter().map(|k| json!({"period": k.period, "made": k.created_at})).collect::<Vec<_>>(),
            "shredded_periods": shredded.iter().map(|k| json!({"period": k.period, "made": k.created_at, "shredded": k.shredded_at})).collect::<Vec<_>>(),
            "shred_horizon": horizon,
            "retention": retention.iter().map(|(what, at, before)| json!({"operation": what, "last_run": at, "deleted_before": before})).collect::<Vec<_>>(),
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
    println!("Policy {} ({recorded}):", policy.fingerprint());
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
    match periods.as_slice() {
        [] => println!("Periods: none (no pseudonym is scoped to a period)"),
        periods => {
            println!("Periods (rows whose pseudonyms link only inside their period):");
            for (period, rows) in periods {
                println!("  {:<12} {rows:>10}", escape(period));
            }
        }
    }
    match live.as_slice() {
        [] => println!("Period keys: none (no aes-siv value is scoped to a period)"),
        live => println!(
            "Period keys (random, wrapped by the key ring; `shred` destroys them): {} live, {} .. {}",
            live.len(),
            escape(&live[0].period),
            escape(&live[live.len() - 1].period)
        ),
    }
    match shredded.as_slice() {
        [] => println!("Shredded periods: none"),
        shredded => {
            println!("Shredded periods (their aes-siv values can never be revealed again):");
            for k in shredded {
                let at = k
                    .shredded_at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
                println!(
                    "  {:<12} shredded {}",
                    escape(&k.period),
                    at.unwrap_or_default()
                );
            }
        }
    }
    if let Some(horizon) = horizon {
        println!(
            "  no key is made for a period ending by {} (logins of those periods store no revealable value)",
            horizon.format("%Y-%m-%d")
        );
    }
    match retention.as_slice() {
        [] => println!("Retention: never run (run --retain-days, --quarantine-retention-days, --audit-retention-days)"),
        runs => {
            println!("Retention (the last run of each, from the audit):");
            for (what, at, before) in runs {
                let before = before.as_deref().map(escape).unwrap_or_default();
                println!("  {what:<22} {}  deleted what was before {before}", at.format("%Y-%m-%d %H:%M UTC"));
            }
        }
    }
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
