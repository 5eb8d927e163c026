//! `login-etl report keys` and `login-etl retire-key`: which key ids still mask which rows, and
//! refusing to retire one that does.

use anyhow::{bail, Context};

use crate::cli::{KeysReportArgs, ReportFormat, RetireKeyArgs};
use crate::safe_text::{escape, escape_json};

pub(super) async fn report(args: KeysReportArgs) -> anyhow::Result<()> {
    let mut sink = args.db.sink()?;
    let usage = sink
        .key_usage()
        .await
        .with_context(|| format!("cannot read user_logins in {}", sink.target()))?;
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

pub(super) async fn retire(args: RetireKeyArgs) -> anyhow::Result<()> {
    let mut sink = args.db.sink()?;
    let usage = sink
        .key_usage()
        .await
        .with_context(|| format!("cannot read user_logins in {}", sink.target()))?;
    let in_use: Vec<String> = usage
        .iter()
        .filter(|u| u.key_id == args.id)
        .map(|u| format!("{} {}", u.rows, u.column))
        .collect();
    if !in_use.is_empty() {
        let total: i64 = usage
            .iter()
            .filter(|u| u.key_id == args.id)
            .map(|u| u.rows)
            .sum();
        bail!(
            "key `{}` still masks {total} values ({}); re-key them first (`login-etl rekey --to <active id> --from {}`: aes-siv and ipcrypt-pfx only) or keep the key",
            args.id,
            in_use.join(", "),
            args.id
        );
    }
    println!(
        "key `{}` masks nothing in {}: it can be removed from LOGIN_ETL_MASK_KEY / the key file",
        args.id,
        sink.target()
    );
    Ok(())
}
