//! `run --policy`: the policy a writer stores rows under, checked against the one in force
//! (`privacy_policy`, migration 21) before the first row, then recorded.

use std::collections::BTreeMap;

use crate::mask::{NetworkMaskMode, StrategyName};
use crate::policy::in_force::{self, Change};
use crate::policy::Policy;
use crate::sink::PgSink;

/// What a run without a policy file stores in `masked_ip_network` under `--ip-network-mask`.
pub(super) fn network_name(mode: NetworkMaskMode, v4: u8, v6: u8) -> Option<String> {
    match mode {
        NetworkMaskMode::Off => None,
        NetworkMaskMode::Hmac => Some(format!("network-{v4}-{v6}")),
        NetworkMaskMode::IpcryptPfx => Some("ipcrypt-pfx".into()),
    }
}

/// The columns `policy` leaves NULL for every login (`drop`, or the other `ip` column).
pub(super) fn may_be_empty(policy: Option<&Policy>) -> Vec<&'static str> {
    let Some(policy) = policy else {
        return Vec::new();
    };
    (in_force::treatments(policy).into_iter())
        .filter(|(_, held)| held == in_force::EMPTY)
        .map(|(column, _)| column)
        .collect()
}

/// Stop with one line if this run would store a column that already holds values another way
/// than the policy in force; then record `policy` (a run without one records nothing, as before
/// policies existed). A table filled before policies were recorded is read from one row.
pub(super) async fn enforce(
    sink: &mut PgSink,
    policy: Option<&Policy>,
    without: BTreeMap<&'static str, String>,
) -> anyhow::Result<()> {
    let (name, new) = match policy {
        Some(policy) => (policy.fingerprint(), in_force::treatments(policy)),
        None => ("no --policy".to_string(), without),
    };
    let can_read = sink.can_read_rows().await?;
    let (was, changes) = match sink.policy_in_force().await? {
        Some(recorded) => {
            let since = recorded.since.format("%Y-%m-%d");
            let was = format!("policy {}, in force since {since}", recorded.fingerprint);
            (was, in_force::changes(&recorded.columns, &new))
        }
        None if policy.is_none() => return Ok(()),
        None => match can_read.then_some(()) {
            Some(()) => match sink.sample_row().await? {
                Some(sample) => {
                    let strategy = (sample.mask.as_deref())
                        .map_or(StrategyName::HmacSha256, crate::mask::strategy_of);
                    let network = sample.network.then(|| "network".to_string());
                    let before: BTreeMap<String, String> =
                        (in_force::without_policy(strategy, network).into_iter())
                            .map(|(column, held)| (column.to_string(), held))
                            .collect();
                    let was = "rows written without a policy".to_string();
                    (was, in_force::changes(&before, &new))
                }
                None => (String::new(), Vec::new()),
            },
            // A least-privilege writer cannot read rows; the first policy is taken as it is.
            None => (String::new(), Vec::new()),
        },
    };
    for change in changes {
        if !can_read || sink.holds_values(&change.column).await? {
            anyhow::bail!("{}", refusal(&change, &was, &name, can_read));
        }
    }
    if let Some(policy) = policy {
        let columns = in_force::treatments(policy);
        sink.record_policy(&policy.fingerprint(), &policy.canonical(), &columns)
            .await?;
    }
    Ok(())
}

fn refusal(change: &Change, was: &str, name: &str, can_read: bool) -> String {
    let holds = if can_read {
        "holds"
    } else {
        "may hold (this writer cannot read it to tell)"
    };
    format!(
        "user_logins.{} {holds} `{}` values ({was}); {name} would store `{}` there, and old and new \
         values would never match: write this policy into a fresh table, or move the rows first \
         (docs/security.md \"Changing a policy\")",
        change.column, change.was, change.now
    )
}
