//! `login-etl reveal`: aes-siv masks back into values, for an authorised operator, audited in
//! `mask_reveals` before anything is shown.

use super::Globals;
use crate::cli::{DbArgs, FieldArg, KeyArgs};
use anyhow::{bail, Context};
use clap::Args;

use super::{load_keys, os_user};
use crate::mask::{network, Field, Masker, RevealError, StrategyName};
use crate::safe_text::escape;
use crate::sink::{Accountable, PgOperator, RevealRequest};

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
    pub field: Option<FieldArg>,
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

impl RevealArgs {
    /// What to reveal; clap's `select` group guarantees exactly one selector.
    pub fn request(&self) -> Option<RevealRequest> {
        if let (Some(mask), Some(field)) = (&self.value, self.field) {
            return Some(RevealRequest::Value {
                mask: mask.clone(),
                field: field.into(),
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

pub(super) async fn execute(args: RevealArgs, _: Globals) -> anyhow::Result<()> {
    crate::cli::audit_text("--reason", Some(&args.reason))?;
    crate::cli::audit_text("--actor", args.actor.as_deref())?;
    if args.reason.trim().is_empty() {
        bail!("--reason must say why the values are needed; it is stored in the audit trail");
    }
    let Some(request) = args.request() else {
        bail!("say what to reveal: --value with --field, --user-id, --masked-ip or --masked-device-id");
    };
    // Refuse one-way masks before anything is read or audited.
    for mask in request.given_masks() {
        let strategy = crate::mask::strategy_of(mask);
        if strategy != StrategyName::AesSiv {
            return Err(RevealError::OneWay(strategy.as_str()).into());
        }
    }
    let keys = load_keys(&args.keys, None).await?;
    let masker = Masker::new(StrategyName::AesSiv, Some(&keys))?;
    let mut database = PgOperator::new(&args.db.settings())?;
    database.require_current_schema().await?;
    database.check_key_ring_for_decrypting(&keys).await?;
    let subject = match &request {
        RevealRequest::UserId(id) => masker.fingerprint("user", id.as_bytes()),
        _ => None,
    };
    let audit = Accountable {
        os_user: os_user(),
        actor: args.actor.clone().unwrap_or_else(os_user),
        reason: args.reason.clone(),
    };
    let rows = database
        .reveal_rows(&request, args.limit, &audit, subject.as_deref())
        .await
        .context("cannot read or audit the rows; nothing was revealed")?;

    if let RevealRequest::Value { mask, field } = &request {
        let value = match field {
            Field::IpNetwork => network::reveal_pfx(&keys, mask)?,
            _ => masker.reveal(*field, mask)?,
        };
        println!("{}", escape(&value));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no matching rows (the request was audited)");
        return Ok(());
    }
    let show = |field: Field, mask: Option<&str>| -> String {
        match mask {
            None => "-".into(),
            Some(mask) => masker
                .reveal(field, mask)
                .map(|v| escape(&v).into_owned())
                .unwrap_or_else(|e| format!("<{e}>")),
        }
    };
    println!("{:<38} {:<10} {:<40} device_id", "user_id", "date", "ip");
    for row in &rows {
        println!(
            "{:<38} {:<10} {:<40} {}",
            escape(&row.user_id),
            row.create_date.map(|d| d.to_string()).unwrap_or_default(),
            show(Field::Ip, row.masked_ip.as_deref()),
            show(Field::DeviceId, row.masked_device_id.as_deref()),
        );
    }
    eprintln!("revealed {} rows; audited in mask_reveals", rows.len());
    Ok(())
}
