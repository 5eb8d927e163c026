//! The simulated database's period keys (a scenario under a policy that seals addresses per day):
//! kept as `sink/postgres/period_keys.rs` keeps them — the first stored key of a period wins, a
//! shredded one reads `None` — and a write refused, changing nothing, when a row it carries was
//! sealed under a key shredded since, or under none. The fault `shred` destroys the key of a
//! period a write is about to commit, just before it: the race a consumer holding the key in
//! memory runs with an operator's `shred`. Rows that commit are checked: never sealed under a
//! shredded key, never made without one.

use super::world::World;
use crate::mask::{KeyRing, Masker, PeriodKeyUse, PeriodKeys, WrappedPeriodKey};
use crate::message::{Outcome, OutcomeKind};
use crate::sink::SinkError;

/// The seed's policy but for addresses sealed under a day's random key and devices linked within
/// a day: what a scenario with `policy` stores.
const SIM_POLICY: &str = "version = 1\n[user_id]\nstore = \"keep\"\n[ip]\nstore = \"aes-siv\"\n\
    scope = \"day\"\n[device_id]\nstore = \"hmac\"\nscope = \"day\"\n[device_type]\n\
    store = \"keep\"\n[locale]\nstore = \"keep\"\n[app_version]\nstore = \"keep\"\n\
    [create_date]\nstore = \"keep\"\n[sent_at]\nstore = \"keep\"\n";

/// A fresh masker, under [`SIM_POLICY`] when `policy`: every incarnation starts without the
/// period keys its last one held.
pub(super) fn masker(policy: bool) -> Masker {
    let keys = KeyRing::parse(&"11".repeat(32)).expect("a key");
    let masker = Masker::hmac(&keys);
    match policy {
        false => masker,
        true => {
            let policy = crate::policy::Policy::parse(SIM_POLICY).expect("the sim's policy");
            let applier = crate::policy::Applier::new(policy, keys);
            masker.with_policy(std::sync::Arc::new(applier))
        }
    }
}

/// Store `fresh` keys where their period has none, then the keys of `periods` as stored.
pub(super) fn read(
    w: &mut World,
    periods: &[String],
    fresh: &[(String, WrappedPeriodKey)],
) -> PeriodKeys {
    for (period, key) in fresh {
        w.db.period_keys
            .entry(period.clone())
            .or_insert_with(|| Some(key.clone()));
    }
    w.count("period_keys.read".into());
    (periods.iter())
        .filter_map(|p| w.db.period_keys.get(p).map(|k| (p.clone(), k.clone())))
        .collect()
}

/// The periods of the rows sealed under a period key, and of those made without one.
fn sealed(outcomes: &[&Outcome]) -> (Vec<String>, Vec<String>) {
    let (mut sealed, mut missing) = (Vec::new(), Vec::new());
    for o in outcomes {
        if let OutcomeKind::Row { login, .. } = &o.kind {
            match (login.period_key, &login.period) {
                (PeriodKeyUse::Sealed, Some(p)) => sealed.push(p.clone()),
                (PeriodKeyUse::Missing, Some(p)) => missing.push(p.clone()),
                _ => {}
            }
        }
    }
    (sealed, missing)
}

/// The fault `shred`: an operator destroys the key of a period this write sealed under, just
/// before it commits.
pub(super) fn shred_first(w: &mut World, outcomes: &[&Outcome]) {
    let (sealed, _) = sealed(outcomes);
    if sealed.is_empty() || !w.strike("shred") {
        return;
    }
    let period = sealed[0].clone();
    w.event(&format!("shred {period}"));
    w.db.period_keys.insert(period, None);
}

/// Refuse a write that carries a row sealed under a shredded key, or made without a key.
pub(super) fn stale(w: &World, outcomes: &[&Outcome]) -> Result<(), SinkError> {
    let (sealed, mut periods) = sealed(outcomes);
    periods
        .extend((sealed.into_iter()).filter(|p| !matches!(w.db.period_keys.get(p), Some(Some(_)))));
    periods.sort();
    periods.dedup();
    match periods.is_empty() {
        true => Ok(()),
        false => Err(SinkError::StalePeriodKeys { periods }),
    }
}

/// What a committed row must be under the policy: a sealed address names its period's key, a
/// shredded period's address is not stored.
pub(super) fn check_committed(w: &mut World, outcomes: &[&Outcome]) {
    for o in outcomes {
        let OutcomeKind::Row { login, .. } = &o.kind else {
            continue;
        };
        let ip = login.masked_ip.as_deref();
        let bad = match (login.period_key, &login.period) {
            (PeriodKeyUse::Sealed, Some(p)) => {
                !ip.is_some_and(|ip| ip.starts_with(&format!("@{p}:")))
            }
            (PeriodKeyUse::Shredded, _) => ip.is_some(),
            (PeriodKeyUse::Missing, _) => true,
            _ => false,
        };
        if bad {
            let what = format!(
                "row of {} committed as {:?}",
                o.message_id, login.period_key
            );
            w.violation(what);
        }
    }
}
