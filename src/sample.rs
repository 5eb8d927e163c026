//! Realistic synthetic login messages, for the demo, the tests and the benchmark.
//!
//! Shaped like the take-home's queue: UUID user ids, `app_version` in two or three parts, some null
//! locales, SSN-like device ids, IPv4 (and some IPv6) addresses. Devices and addresses are drawn from
//! pools smaller than the message count, so the same device or IP shows up for several users: the
//! duplicates that masking must keep identifiable. A share of the messages is deliberately bad.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;

/// The bundled sample: 100 messages shaped like the take-home's queue (see `data/README.md`).
pub const SAMPLE_JSONL: &str = include_str!("../data/sample-messages.jsonl");

/// The junk the take-home's queue carries, first in the list of bad kinds.
pub const WRONG_MESSAGE_TYPE: &str = r#"{"foo": "oops_wrong_msg_type", "bar": "123"}"#;

const DEVICE_TYPES: [&str; 6] = ["android", "ios", "android", "ios", "web", "ipados"];
const LOCALES: [&str; 12] = [
    "RU", "PH", "ID", "FR", "PT", "BR", "US", "DE", "IN", "JP", "NG", "MX",
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// Total messages, bad ones included.
    pub count: usize,
    /// Fraction of bad messages, rounded to the nearest count (0.01 of 100 is exactly one).
    pub bad_share: f64,
    /// Same seed, same messages.
    pub seed: u64,
}

/// The bodies, in send order. Bad messages are spread evenly through the set.
pub fn generate(spec: &SampleSpec) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let bad = ((spec.count as f64) * spec.bad_share.clamp(0.0, 1.0)).round() as usize;
    // Pools at ~70 % of the count, so about a third of messages reuse a device or address.
    let pool = (spec.count * 7 / 10).max(1);
    let devices: Vec<String> = (0..pool).map(|_| device_id(&mut rng)).collect();
    let ips: Vec<String> = (0..pool).map(|_| ip(&mut rng)).collect();

    let mut bodies: Vec<String> = (0..spec.count - bad)
        .map(|_| good_message(&mut rng, &devices, &ips))
        .collect();
    for k in 0..bad {
        let at = if bad == 0 {
            0
        } else {
            (k + 1) * spec.count / (bad + 1)
        };
        bodies.insert(at.min(bodies.len()), bad_message(k, &mut rng));
    }
    bodies
}

fn device_id(rng: &mut StdRng) -> String {
    format!(
        "{:03}-{:02}-{:04}",
        rng.gen_range(100..1000),
        rng.gen_range(0..100),
        rng.gen_range(0..10000)
    )
}

fn ip(rng: &mut StdRng) -> String {
    if rng.gen_bool(0.05) {
        format!(
            "2001:db8:{:x}:{:x}::{:x}",
            rng.gen::<u16>(),
            rng.gen::<u16>(),
            rng.gen::<u16>()
        )
    } else {
        format!(
            "{}.{}.{}.{}",
            rng.gen_range(1..=254),
            rng.gen::<u8>(),
            rng.gen::<u8>(),
            rng.gen_range(1..=254)
        )
    }
}

fn app_version(rng: &mut StdRng) -> String {
    match rng.gen_range(0..10) {
        0 => format!("0.{}", rng.gen_range(10..100)),
        1 => format!("{}.{}", rng.gen_range(1..5), rng.gen_range(0..10)),
        _ => format!(
            "{}.{}.{}",
            rng.gen_range(0..4),
            rng.gen_range(0..10),
            rng.gen_range(0..10)
        ),
    }
}

/// Field order as in the take-home's messages.
#[derive(Serialize)]
struct SampleLogin<'a> {
    user_id: String,
    app_version: String,
    device_type: &'a str,
    ip: &'a str,
    locale: Option<&'a str>,
    device_id: &'a str,
}

fn good_message(rng: &mut StdRng, devices: &[String], ips: &[String]) -> String {
    let login = SampleLogin {
        user_id: uuid::Builder::from_random_bytes(rng.gen())
            .into_uuid()
            .to_string(),
        app_version: app_version(rng),
        device_type: DEVICE_TYPES.choose(rng).expect("non-empty"),
        ip: ips.choose(rng).expect("non-empty"),
        locale: (!rng.gen_bool(0.2)).then(|| *LOCALES.choose(rng).expect("non-empty")),
        device_id: devices.choose(rng).expect("non-empty"),
    };
    serde_json::to_string(&login).expect("plain strings serialize")
}

/// Bad messages cycle through the kinds real traffic carries; each one is rejected for a different reason.
fn bad_message(k: usize, rng: &mut StdRng) -> String {
    let user = uuid::Builder::from_random_bytes(rng.gen())
        .into_uuid()
        .to_string();
    match k % 8 {
        0 => WRONG_MESSAGE_TYPE.to_string(),
        1 => "login ok user=42".to_string(),
        2 => "null".to_string(),
        3 => json!({"user_id": user, "device_type": "ios", "ip": "300.1.2.3", "device_id": device_id(rng)}).to_string(),
        4 => json!({"user_id": user, "device_type": "android", "device_id": device_id(rng), "locale": "RU"}).to_string(),
        5 => json!({"user_id": user, "device_type": "ios", "ip": ip(rng), "device_id": device_id(rng), "locale": "x".repeat(40)}).to_string(),
        6 => json!({"user_id": user, "device_type": "ios", "ip": ip(rng), "device_id": device_id(rng), "app_version": 3.7}).to_string(),
        _ => format!(r#"{{"user_id": "{user}", "device_type": "ios", "ip": "#),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::decode;

    #[test]
    fn one_percent_of_a_hundred_is_the_take_home_junk_message() {
        let bodies = generate(&SampleSpec {
            count: 100,
            bad_share: 0.01,
            seed: 1,
        });
        assert_eq!(bodies.len(), 100);
        let bad: Vec<_> = bodies.iter().filter(|b| decode(b).is_err()).collect();
        assert_eq!(bad, vec![WRONG_MESSAGE_TYPE]);
    }

    #[test]
    fn same_seed_same_messages_and_duplicates_exist() {
        let spec = SampleSpec {
            count: 500,
            bad_share: 0.1,
            seed: 7,
        };
        let a = generate(&spec);
        assert_eq!(a, generate(&spec));
        assert_eq!(a.iter().filter(|b| decode(b).is_err()).count(), 50);
        let events: Vec<_> = a.iter().filter_map(|b| decode(b).ok()).collect();
        let distinct: std::collections::HashSet<_> = events.iter().map(|e| &e.device_id).collect();
        assert!(distinct.len() < events.len(), "some devices repeat");
        assert!(events.iter().any(|e| e.ip.is_ipv6()));
        assert!(events.iter().any(|e| e.locale.is_none()));
    }
}
