//! `login-etl reveal`: aes-siv masks back into values, for an authorised operator, audited in
//! `mask_reveals` before anything is shown.

use super::Globals;
use crate::cli::{DbArgs, FieldArg, KeyArgs, PolicyFileArgs};
use anyhow::{bail, Context};
use clap::Args;

use super::{load_keys, os_user};
use std::collections::HashMap;

use crate::mask::{network, Field, KeyRing, Masker, RevealError, StrategyName};
use crate::safe_text::escape;
use crate::sink::{Accountable, MaskedRow, PgOperator, RevealRequest};

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
    /// Optional: the policy rows were written under. Without it, the policies `run` recorded
    /// say whether `user_id` holds pseudonyms (--user-id finds them either way).
    #[command(flatten)]
    pub policy: PolicyFileArgs,
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
    let policy = super::erase::optional_policy(&args.policy)?;
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
    let pseudonyms = match &request {
        RevealRequest::UserId(id) => {
            super::erase::pseudonyms_of(&mut database, &keys, id, policy.as_ref()).await?
        }
        _ => Vec::new(),
    };
    let rows = database
        .reveal_rows(
            &request,
            args.limit,
            &audit,
            subject.as_deref(),
            &pseudonyms,
        )
        .await
        .context("cannot read or audit the rows; nothing was revealed")?;
    let periods = sealed_periods(&request, &rows);
    let sealed = PeriodMaskers::load(&mut database, &keys, &periods).await?;

    if let RevealRequest::Value { mask, field } = &request {
        let value = match (field, crate::mask::period_of_mask(mask)) {
            (Field::IpNetwork, _) => network::reveal_pfx(&keys, mask)?,
            (_, Some(period)) => sealed.reveal(period, *field, mask)?,
            (_, None) => masker.reveal(*field, mask)?,
        };
        println!("{}", escape(&value));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no matching rows (the request was audited)");
        return Ok(());
    }
    let show = |field: Field, mask: Option<&str>, period: Option<&str>| -> String {
        let revealed = match (mask, mask.and_then(crate::mask::period_of_mask)) {
            (None, _) => return sealed.absent(period),
            (Some(mask), Some(period)) => sealed.reveal(period, field, mask),
            (Some(mask), None) => masker.reveal(field, mask).map_err(anyhow::Error::from),
        };
        revealed
            .map(|v| escape(&v).into_owned())
            .unwrap_or_else(|e| format!("<{e}>"))
    };
    println!("{:<38} {:<10} {:<40} device_id", "user_id", "date", "ip");
    for row in &rows {
        let period = row.period.as_deref();
        println!(
            "{:<38} {:<10} {:<40} {}",
            escape(&row.user_id),
            row.create_date.map(|d| d.to_string()).unwrap_or_default(),
            show(Field::Ip, row.masked_ip.as_deref(), period),
            show(Field::DeviceId, row.masked_device_id.as_deref(), period),
        );
    }
    eprintln!("revealed {} rows; audited in mask_reveals", rows.len());
    Ok(())
}

/// The periods whose keys sealed what will be shown: those the masks name, and the rows' own.
fn sealed_periods(request: &RevealRequest, rows: &[MaskedRow]) -> Vec<String> {
    let mut periods: Vec<String> = (request.given_masks().into_iter())
        .chain(rows.iter().flat_map(|r| {
            (r.masked_ip.as_deref().into_iter()).chain(r.masked_device_id.as_deref())
        }))
        .filter_map(crate::mask::period_of_mask)
        .map(str::to_string)
        .chain(rows.iter().filter_map(|r| r.period.clone()))
        .collect();
    periods.sort();
    periods.dedup();
    periods
}

/// Maskers of the period keys a reveal needs, or why a period has none.
struct PeriodMaskers(HashMap<String, Result<Masker, String>>);

impl PeriodMaskers {
    async fn load(
        database: &mut PgOperator,
        keys: &KeyRing,
        periods: &[String],
    ) -> anyhow::Result<Self> {
        if periods.is_empty() {
            return Ok(Self(HashMap::new()));
        }
        let stored = (database.period_keys_of(periods).await)
            .context("cannot read period_keys; the request was audited, nothing was revealed")?;
        let mut maskers = HashMap::new();
        for key in stored {
            let masker = match (&key.wrapped, key.shredded_at) {
                (Some(wrapped), _) => crate::mask::period_masker(keys, &key.period, wrapped)
                    .map_err(|e| e.to_string()),
                (None, at) => Err(format!(
                    "shredded{}: the key of period {} is destroyed and nothing can recover this value",
                    at.map(|t| format!(" on {}", t.format("%Y-%m-%d"))).unwrap_or_default(),
                    key.period
                )),
            };
            maskers.insert(key.period, masker);
        }
        Ok(Self(maskers))
    }

    fn reveal(&self, period: &str, field: Field, mask: &str) -> anyhow::Result<String> {
        match self.0.get(period) {
            Some(Ok(masker)) => Ok(masker.reveal(field, mask)?),
            Some(Err(why)) => bail!("{why}"),
            None => bail!("no key of period {period} is stored: this mask was not made here"),
        }
    }

    /// What an empty column shows: shredded if its period was (a login that arrived after its
    /// period's shred is stored without the value).
    fn absent(&self, period: Option<&str>) -> String {
        match period.and_then(|p| self.0.get(p)) {
            Some(Err(why)) if why.starts_with("shredded") => "<shredded>".into(),
            _ => "-".into(),
        }
    }
}
