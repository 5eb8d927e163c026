//! Applying a policy: the seed policy stores exactly what `run` stores today, scoped pseudonyms
//! link inside a period only, and no choice lets a raw address or device id through.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;

use super::{Applier, Policy, Stored};
use crate::mask::{KeyRing, Masker};
use crate::validate::{decode, LoginEvent};

fn keys() -> KeyRing {
    KeyRing::parse(&format!("k2:{}\nk1:{}", "cd".repeat(32), "ab".repeat(32))).unwrap()
}

fn login(ip: &str, device_id: &str) -> LoginEvent {
    let body = serde_json::json!({"user_id": "u-1", "device_type": "ios", "ip": ip,
        "device_id": device_id, "locale": "NZ", "app_version": "2.3.0"});
    decode(&body.to_string()).unwrap()
}

fn column<'s>(stored: &'s Stored, name: &str) -> Option<&'s str> {
    let found = stored.columns.iter().find(|(c, _)| *c == name);
    found.and_then(|(_, v)| v.as_deref())
}

fn policy(ip: &str, device_id: &str) -> Policy {
    let text = include_str!("../../examples/policies/seed.toml")
        .replace("[ip]\nstore = \"hmac\"", &format!("[ip]\n{ip}"))
        .replace(
            "[device_id]\nstore = \"hmac\"",
            &format!("[device_id]\n{device_id}"),
        );
    Policy::parse(&text).unwrap()
}

#[test]
fn the_seed_policy_stores_what_run_stores_today() {
    let at = Utc.with_ymd_and_hms(2026, 12, 5, 10, 31, 7).unwrap();
    let event = login("::ffff:203.0.113.9", " dev-1 ");
    let stored = Applier::new(Policy::seed(), keys())
        .apply(&event, at)
        .unwrap();
    let today = Masker::new(crate::mask::StrategyName::HmacSha256, Some(&keys()))
        .unwrap()
        .mask_event(event);
    assert_eq!(column(&stored, "masked_ip"), today.masked_ip.as_deref());
    assert_eq!(
        column(&stored, "masked_device_id"),
        today.masked_device_id.as_deref()
    );
    assert_eq!(column(&stored, "user_id"), Some("u-1"));
    assert_eq!(column(&stored, "app_version"), Some("2.3.0"));
    assert_eq!(stored.period, None);
}

#[test]
fn scoped_pseudonyms_link_inside_a_period_only() {
    let applier = Applier::new(
        policy(
            "store = \"hmac\"\nscope = \"month\"",
            "store = \"hmac\"\nscope = \"month\"",
        ),
        keys(),
    );
    let event = login("203.0.113.9", "dev-1");
    let early = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let late = Utc.with_ymd_and_hms(2026, 11, 30, 23, 59, 59).unwrap();
    let next = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let [a, b, c] = [early, late, next].map(|at| applier.apply(&event, at).unwrap());
    assert_eq!(
        (a.period.as_deref(), c.period.as_deref()),
        (Some("2026-11"), Some("2026-12"))
    );
    for field in ["masked_ip", "masked_device_id"] {
        assert_eq!(
            column(&a, field),
            column(&b, field),
            "{field} within November"
        );
        assert_ne!(
            column(&a, field),
            column(&c, field),
            "{field} across months"
        );
        assert!(
            column(&a, field).unwrap().starts_with("k2:"),
            "the active key's id"
        );
    }
    let unscoped = Applier::new(Policy::seed(), keys())
        .apply(&event, early)
        .unwrap();
    assert_ne!(column(&a, "masked_ip"), column(&unscoped, "masked_ip"));
}

/// Every choice `ip` and `device_id` offer, any address and device id: neither value appears in
/// any column (`drop` leaves the column NULL).
#[test]
fn no_choice_lets_a_raw_address_or_device_id_through() {
    let ip_choices = [
        "store = \"hmac\"",
        "store = \"aes-siv\"",
        "store = \"ipcrypt-pfx\"",
        "store = \"network\"",
        "store = \"sha256\"\nunkeyed_ok = true",
        "store = \"drop\"",
        "store = \"hmac\"\nscope = \"day\"",
        "store = \"aes-siv\"\nscope = \"day\"",
        "store = \"network\"\nscope = \"day\"\nprefix_v4 = 16",
    ];
    let device_choices = [
        "store = \"hmac\"",
        "store = \"aes-siv\"",
        "store = \"sha256\"\nunkeyed_ok = true",
        "store = \"drop\"",
        "store = \"hmac\"\nscope = \"day\"",
    ];
    proptest!(ProptestConfig::with_cases(64), |(a in 1u8..=254, b: u8, c: u8, d in 1u8..=254, device in "[a-z0-9-]{6,20}", v6: bool, secs in 0i64..4_000_000_000)| {
        let ip = match v6 {
            false => format!("{a}.{b}.{c}.{d}"),
            true => format!("2001:db8:{a:x}{b:02x}::{c:x}{d:02x}"),
        };
        let event = login(&ip, &device);
        let at = Utc.timestamp_opt(secs, 0).unwrap();
        for ip_choice in ip_choices {
            for device_choice in device_choices {
                let stored = Applier::new(policy(ip_choice, device_choice), keys()).apply(&event, at).unwrap();
                for (name, value) in &stored.columns {
                    let value = value.as_deref().unwrap_or("");
                    prop_assert!(!value.contains(&ip) && !value.contains(&device), "{ip_choice} / {device_choice}: {name} = {value}");
                }
                let dropped = |c: &str| stored.columns.iter().any(|(n, v)| *n == c && v.is_none());
                prop_assert_eq!(ip_choice == "store = \"drop\"", dropped("masked_ip"));
                prop_assert_eq!(device_choice == "store = \"drop\"", dropped("masked_device_id"));
            }
        }
    });
}

#[test]
fn the_start_check_makes_a_row() {
    assert!(decode(super::apply::SAMPLE_LOGIN).is_ok());
    let monthly =
        Policy::parse(include_str!("../../examples/policies/monthly-links.toml")).unwrap();
    for policy in [Policy::seed(), monthly] {
        Applier::new(policy, keys()).check_keys().unwrap();
    }
}
