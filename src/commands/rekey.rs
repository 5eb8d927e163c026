//! `login-etl rekey`: re-encrypt aes-siv masks (and ipcrypt-pfx network pseudonyms) written under
//! older keys to the target key, batch by batch. Each batch is re-encrypted, written and counted
//! in the run's audit row in one transaction, so a killed run resumes where it stopped and every
//! value still reveals to the same raw value. hmac masks are one-way: without the raw values they
//! cannot be re-keyed (reported, left as they are).

use super::Globals;
use crate::cli::{DbArgs, KeyArgs};
use anyhow::{bail, Context};
use clap::Args;

use super::{load_keys, os_user};
use crate::mask::{Field, Rekeyer};
use crate::sink::{rekey_commit, Accountable, PgOperator, RekeyRow};

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

/// The same row with every old value re-encrypted to the target key (in `extra_fields`, those
/// under one of the `old` key ids).
fn rekey_row(rekeyer: &Rekeyer, old: &[String], row: RekeyRow) -> anyhow::Result<RekeyRow> {
    let moved = |field: Field, mask: Option<&str>| -> anyhow::Result<Option<String>> {
        mask.map(|m| {
            rekeyer
                .reencrypt(field, m)
                .with_context(|| format!("a {} value cannot be decrypted", field_name(field)))
        })
        .transpose()
    };
    let extra_fields = match row.extra_fields.as_deref() {
        None => None,
        Some(text) => {
            let mut value: serde_json::Value =
                serde_json::from_str(text).context("extra_fields is not JSON")?;
            let moved = (rekeyer.reencrypt_json(&mut value, &|id| old.iter().any(|o| o == id)))
                .context("a mask in extra_fields cannot be decrypted")?;
            // Selected for a mask that does not move: stop rather than select it again forever.
            if moved == 0
                && row.masked_ip.is_none()
                && row.masked_device_id.is_none()
                && row.masked_ip_network.is_none()
            {
                bail!("a value in extra_fields looks like a mask under an old key but is not one");
            }
            Some(value.to_string())
        }
    };
    Ok(RekeyRow {
        extra_fields,
        masked_ip: moved(Field::Ip, row.masked_ip.as_deref())?,
        masked_device_id: moved(Field::DeviceId, row.masked_device_id.as_deref())?,
        masked_ip_network: moved(Field::IpNetwork, row.masked_ip_network.as_deref())?,
        ..row
    })
}

fn field_name(field: Field) -> &'static str {
    match field {
        Field::Ip => "masked_ip",
        Field::DeviceId => "masked_device_id",
        Field::IpNetwork => "masked_ip_network",
    }
}

pub(super) async fn execute(args: RekeyArgs, globals: Globals) -> anyhow::Result<()> {
    crate::cli::audit_text("--reason", Some(&args.reason))?;
    crate::cli::audit_text("--actor", args.actor.as_deref())?;
    let shutdown = globals.shutdown;
    let keys = load_keys(&args.keys, None).await?;
    if args.from.as_deref() == Some(args.to.as_str()) {
        bail!("--from and --to are the same key");
    }
    let ring = keys.key_fingerprints();
    // The key ids whose masks move (for extra_fields; the columns select by `--to`/`--from`).
    let old: Vec<String> = (ring.iter())
        .map(|(id, _)| id.clone())
        .filter(|id| *id != args.to && args.from.as_ref().map_or(true, |from| from == id))
        .collect();
    let rekeyer = Rekeyer::new(keys, &args.to)?;
    let mut database = PgOperator::new(&args.db.settings())?;
    database.require_current_schema().await?;
    // Refuse a replaced key before touching anything; then record the key written under, so
    // consumers with another key under that id are refused afterwards.
    database
        .check_key_ring_for_decrypting(rekeyer.keys())
        .await?;
    if let Some((id, fingerprint)) = ring.iter().find(|(id, _)| *id == args.to) {
        database.record_key(id, fingerprint).await?;
    }
    let one_way = database.one_way_masks_not_under(&args.to).await?;
    if one_way > 0 {
        eprintln!(
            "note: {one_way} hmac-sha256 masks are under other keys than `{}`; they are one-way and \
             cannot be re-keyed without the raw values (keep their key until those rows age out)",
            args.to
        );
    }
    let who = Accountable {
        os_user: os_user(),
        actor: args.actor.clone().unwrap_or_else(os_user),
        reason: args.reason.clone(),
    };
    let audit_id = database
        .start_rekey(&who, &args.to, args.from.as_deref())
        .await?;
    let mut total = 0usize;
    while !shutdown.is_cancelled() {
        let (tx, rows) = database
            .rekey_batch(&args.to, args.from.as_deref(), &old, i64::from(args.batch))
            .await
            .context("cannot read the rows to re-key")?;
        if rows.is_empty() {
            break;
        }
        let rekeyed = rows
            .into_iter()
            .map(|row| rekey_row(&rekeyer, &old, row))
            .collect::<anyhow::Result<Vec<_>>>()
            .context("re-keying stopped; the rows already done keep their new key (run again after fixing the key ring)")?;
        total += rekeyed.len();
        rekey_commit(tx, &rekeyed, audit_id).await?;
        eprintln!("re-keyed {total} rows so far");
    }
    // Period keys (a policy's scoped aes-siv) are not re-keyed row by row: their wrapping is.
    let rewrapped = match shutdown.is_cancelled() {
        true => 0,
        false => (database
            .rewrap_period_keys(&rekeyer.keys().with_active(&args.to)?, &who)
            .await)
            .context("cannot re-wrap the period keys")?,
    };
    println!(
        "re-keyed {total} rows and re-wrapped {rewrapped} period keys to `{}`; audited in privacy_operations (id {audit_id})",
        args.to
    );
    Ok(())
}
