//! `login-etl retire-key`: refusing to retire a key id that still masks something.

use anyhow::{bail, Context};

use clap::Args;

use super::{load_keys, Globals};
use crate::cli::{DbArgs, KeyArgs};
use crate::sink::PgOperator;

/// `retire-key` options.
#[derive(Debug, Clone, Args)]
pub struct RetireKeyArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    /// The key ring, checked against the recorded key fingerprints before anything is read.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// The key id to retire from the key ring.
    #[arg(long)]
    pub id: String,
}

pub(super) async fn execute(args: RetireKeyArgs, _: Globals) -> anyhow::Result<()> {
    let keys = load_keys(&args.keys, None).await?;
    let mut database = PgOperator::new(&args.db.settings())?;
    database.require_current_schema().await?;
    database.check_key_ring(&keys.key_fingerprints()).await?;
    let usage = database
        .key_usage()
        .await
        .with_context(|| format!("cannot read user_logins in {}", database.target()))?;
    let mut in_use: Vec<String> = usage
        .iter()
        .filter(|u| u.key_id == args.id)
        .map(|u| format!("{} {}", u.rows, u.column))
        .collect();
    let extra = database.extra_fields_under(&args.id).await?;
    if extra > 0 {
        in_use.push(format!("{extra} extra_fields"));
    }
    if super::erase::pseudonymised(&mut database, None).await? != super::erase::Pseudonyms::None {
        let pseudonyms = database.user_id_pseudonyms_under(&args.id).await?;
        if pseudonyms > 0 {
            bail!(
                "key `{}` made the user_id pseudonyms of {pseudonyms} rows; they are one-way (no re-key), and erase and reveal find a subject's rows by them only while the key is in the ring: keep the key until those rows age out (--retain-days)",
                args.id
            );
        }
    }
    let wrapping = database.period_keys_wrapped_by(&args.id).await?;
    if wrapping > 0 {
        bail!(
            "key `{}` wraps {wrapping} period keys (a policy's scoped aes-siv); re-wrap them first (`login-etl rekey --to <active id>`) or keep the key",
            args.id
        );
    }
    if !in_use.is_empty() {
        let total: i64 = extra
            + usage
                .iter()
                .filter(|u| u.key_id == args.id)
                .map(|u| u.rows)
                .sum::<i64>();
        bail!(
            "key `{}` still masks {total} values ({}); re-key them first (`login-etl rekey --to <active id> --from {}`: aes-siv and ipcrypt-pfx only) or keep the key",
            args.id,
            in_use.join(", "),
            args.id
        );
    }
    let remaining: Vec<String> = (keys.key_fingerprints().into_iter())
        .map(|(id, _)| id)
        .filter(|id| *id != args.id)
        .collect();
    let erasures = database.erasures_only_under(&args.id, &remaining).await?;
    if erasures > 0 {
        bail!(
            "key `{}` is the only key {erasures} erasure(s) were recorded under: without it no writer can tell their subjects' earlier logins apart, and queued or redriven ones would land again; erase those subjects again with the new key and `{}` both in the ring (the records hold no user ids: take them from your request log), or keep the key",
            args.id,
            args.id
        );
    }
    println!(
        "key `{}` masks nothing in {}: it can be removed from LOGIN_ETL_MASK_KEY / the key file",
        args.id,
        database.target()
    );
    Ok(())
}
