//! `run --policy`: the policy a writer stores rows under, checked against every policy recorded
//! before (`privacy_policy`, migration 21) and recorded, before the first row. A run without a
//! policy file records what its flags store, so a later policy is checked against it too.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::run::RunArgs;
use crate::mask::NetworkMaskMode;
use crate::policy::in_force::{self, Change};
use crate::policy::Policy;
use crate::sink::postgres::{PolicyInForce, NO_POLICY_FILE};
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

/// What a run stores and under which name: its policy, or what its flags store.
pub(super) struct Adoption {
    fingerprint: String,
    canonical: String,
    columns: BTreeMap<&'static str, String>,
    name: String,
    from_file: bool,
}

/// What `run` with `args` stores (`policy`: its `--policy`, loaded).
pub(super) fn adoption(policy: Option<&Policy>, args: &RunArgs) -> Adoption {
    let network = network_name(
        args.network.mode(),
        args.network.ipv4_network_prefix,
        args.network.ipv6_network_prefix,
    );
    let without = in_force::without_policy(args.strategy(), network);
    let (fingerprint, canonical, columns) = match policy {
        Some(policy) => (
            policy.fingerprint(),
            policy.canonical(),
            in_force::treatments(policy),
        ),
        None => {
            let canonical = format!("{NO_POLICY_FILE}; columns: {without:?}");
            let digest = hex::encode(Sha256::digest(canonical.as_bytes()));
            (format!("pol-{}", &digest[..12]), canonical, without)
        }
    };
    let name = match policy {
        Some(_) => format!("policy {fingerprint}"),
        None => "this run (no --policy)".to_string(),
    };
    Adoption {
        fingerprint,
        canonical,
        columns,
        name,
        from_file: policy.is_some(),
    }
}

/// One line if a policy recorded before stores a column otherwise than `adoption` would. A run
/// with a policy file answers to every record; a run without one (flags, as before policies
/// existed) only to the policy files recorded, so changing `--mask-strategy` stays as it was.
pub(super) fn objection(adoption: &Adoption, recorded: &[PolicyInForce]) -> Option<String> {
    let binding = |was: &&PolicyInForce| adoption.from_file || was.from_file;
    recorded.iter().filter(binding).find_map(|was| {
        let change = in_force::changes(&was.columns, &adoption.columns)
            .into_iter()
            .next()?;
        Some(refusal(&change, was, &adoption.name))
    })
}

/// Stop with [`objection`]'s line, else record this run's policy. Two consumers starting at once
/// take turns, so the second sees the first's record.
pub(super) async fn enforce(sink: &mut PgSink, adoption: &Adoption) -> anyhow::Result<()> {
    let refuse = |recorded: &[PolicyInForce]| objection(adoption, recorded);
    match sink
        .adopt_policy(
            &adoption.fingerprint,
            &adoption.canonical,
            &adoption.columns,
            refuse,
        )
        .await?
    {
        Some(line) => anyhow::bail!("{line}"),
        None => Ok(()),
    }
}

fn refusal(change: &Change, was: &PolicyInForce, name: &str) -> String {
    let since = was.since.format("%Y-%m-%d");
    format!(
        "user_logins.{} is stored as `{}` (policy {}, used since {since}); {name} would store `{}` \
         there, and old and new values would never match: write this policy into a fresh table, \
         or move the rows first (docs/security.md \"Changing a policy\")",
        change.column, change.was, was.fingerprint, change.now
    )
}
