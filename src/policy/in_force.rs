//! What a policy stores in each column of `user_logins`, and which columns a new policy would
//! store another way than the one in force: `run` refuses such a policy where the column already
//! holds values, since old and new values would never match (like a replaced key).

use std::collections::BTreeMap;

use super::{describe, Policy, Store};
use crate::mask::StrategyName;

/// Every column a writer fills and this module speaks of, in the table's order.
pub const COLUMNS: [&str; 9] = [
    "user_id",
    "device_type",
    "masked_ip",
    "masked_device_id",
    "locale",
    "app_version",
    "create_date",
    "masked_ip_network",
    "sent_at",
];

/// What a column holds when the policy leaves it NULL.
pub const EMPTY: &str = "empty";

/// A column whose treatment would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The column.
    pub column: String,
    /// What it holds under the policy in force.
    pub was: String,
    /// What the new policy would store there.
    pub now: String,
}

/// Column → what `policy` stores there (`keep`, `hmac/month`, `network-24-48`, `empty`, …).
pub fn treatments(policy: &Policy) -> BTreeMap<&'static str, String> {
    let mut columns: BTreeMap<&'static str, String> =
        COLUMNS.iter().map(|c| (*c, EMPTY.to_string())).collect();
    for (field, store) in policy.fields() {
        let held = match store {
            Store::Drop => EMPTY.to_string(),
            store => store.canonical(),
        };
        columns.insert(describe::column(field, store), held);
    }
    columns
}

/// What a run without `--policy` stores: the seed policy with `--mask-strategy` for `ip` and
/// `device_id`, and `masked_ip_network` as `--ip-network-mask` says (`network` names it).
pub fn without_policy(
    strategy: StrategyName,
    network: Option<String>,
) -> BTreeMap<&'static str, String> {
    let mut columns = treatments(&Policy::seed());
    let strategy = match strategy {
        StrategyName::HmacSha256 => "hmac",
        other => other.as_str(),
    };
    columns.insert("masked_ip", strategy.to_string());
    columns.insert("masked_device_id", strategy.to_string());
    columns.insert("masked_ip_network", network.unwrap_or_else(|| EMPTY.into()));
    columns
}

/// What migration 21 records for `masked_ip_network` of rows written before policies were
/// recorded: a network pseudonym of prefixes it cannot tell.
pub const LEGACY_NETWORK: &str = "network";

/// Whether a column stored as `was` may go on being written as `now`: the same way, or it was
/// never filled (`empty`), or it holds network pseudonyms of unknown prefixes (rows from before
/// policies were recorded) and goes on with network pseudonyms.
pub fn compatible(was: &str, now: &str) -> bool {
    was == now || was == EMPTY || (was == LEGACY_NETWORK && now.starts_with("network-"))
}

/// The columns `new` would store otherwise than `in_force` says ([`compatible`]), in the table's
/// order. A column the record does not name (a newer column) is taken as empty.
pub fn changes(in_force: &BTreeMap<String, String>, new: &BTreeMap<&str, String>) -> Vec<Change> {
    (COLUMNS.iter())
        .filter_map(|column| {
            let was = in_force.get(*column).map_or(EMPTY, String::as_str);
            let now = new.get(column).map_or(EMPTY, String::as_str);
            (!compatible(was, now)).then(|| Change {
                column: column.to_string(),
                was: was.to_string(),
                now: now.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(map: BTreeMap<&str, String>) -> BTreeMap<String, String> {
        map.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn the_seed_policy_is_what_a_run_without_one_stores() {
        let seed = treatments(&Policy::seed());
        assert_eq!(seed, without_policy(StrategyName::HmacSha256, None));
        assert_eq!(seed["masked_ip"], "hmac");
        assert_eq!(seed["masked_ip_network"], EMPTY);
        assert_eq!(seed["user_id"], "keep");
    }

    #[test]
    fn every_changed_column_is_named_and_only_those() {
        let minimal = Policy::parse(include_str!("../../examples/policies/minimal.toml")).unwrap();
        let changed = changes(&owned(treatments(&Policy::seed())), &treatments(&minimal));
        let names: Vec<&str> = changed.iter().map(|c| c.column.as_str()).collect();
        assert_eq!(names, ["user_id", "masked_ip", "app_version", "sent_at"]);
        assert!(changes(&owned(treatments(&minimal)), &treatments(&minimal)).is_empty());
        // A column never filled may be filled; a filled one may not be emptied.
        assert!(compatible(EMPTY, "network-24-48") && !compatible("hmac", EMPTY));
        assert!(compatible(LEGACY_NETWORK, "network-16-40"));
        assert!(!compatible(LEGACY_NETWORK, "ipcrypt-pfx"));
        let aes = without_policy(StrategyName::AesSiv, None);
        let changed = changes(&owned(treatments(&Policy::seed())), &aes);
        assert_eq!(changed.len(), 2, "{changed:?}");
        assert_eq!(
            (changed[0].was.as_str(), changed[0].now.as_str()),
            ("hmac", "aes-siv")
        );
    }
}
