//! `login-etl report duplicates`: devices and addresses shared by several users.

use anyhow::Context;

use crate::cli::{DuplicatesArgs, ReportFormat};
use crate::safe_text::{escape, escape_json};
use crate::sink::{SharedDevice, SharedIp};

pub(super) async fn duplicates(args: DuplicatesArgs) -> anyhow::Result<()> {
    let mut sink = args.db.sink()?;
    let devices = sink
        .shared_devices(args.limit)
        .await
        .with_context(|| format!("cannot read user_logins in {}", sink.target()))?;
    let ips = sink.shared_ips(args.limit).await?;
    let networks = sink.shared_networks(args.limit).await?;
    match args.format {
        ReportFormat::Json => {
            let report = serde_json::json!({
                "shared_devices": devices,
                "shared_ips": ips,
                "shared_networks": networks,
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
            print_table(&devices, &ips);
            println!("Networks shared by several users ({}):", networks.len());
            println!(
                "  {:<70} {:>6} {:>7}",
                "network pseudonym", "users", "logins"
            );
            for n in &networks {
                println!(
                    "  {:<70} {:>6} {:>7}",
                    escape(&n.network),
                    n.users,
                    n.logins
                );
            }
        }
    }
    Ok(())
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
            "  {:<70} {:>6} {:>7}",
            escape(&d.masked_device_id),
            d.users,
            d.logins
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
            "  {:<70} {:>6} {:>8} {:>7}",
            escape(&ip.masked_ip),
            ip.users,
            ip.devices,
            ip.logins
        );
    }
}
