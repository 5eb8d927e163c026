//! What a privacy policy costs the pure middle: `transform` over the same generated messages with
//! no policy, with the seed policy applied through `run --policy`'s path, and with a policy that
//! scopes `device_id` to a month and stores `ip` as a /24 network pseudonym. CPU only, no
//! services. Run: `cargo bench --bench policy [-- MESSAGES]` (default 50,000); it prints rates and
//! their ratios to the first, measured in one run (the machine is shared: compare ratios).

use std::sync::Arc;
use std::time::Instant;

use login_etl::mask::{keys, KeyRing, Masker};
use login_etl::message::{Message, MessageId};
use login_etl::policy::{Applier, Policy};
use login_etl::sample::{self, SampleSpec};
use login_etl::transform;

const MONTHLY_NETWORK: &str = r#"version = 1
[user_id]
store = "keep"
[ip]
store = "network"
prefix_v4 = 24
prefix_v6 = 48
[device_id]
store = "hmac"
scope = "month"
[device_type]
store = "keep"
[locale]
store = "keep"
[app_version]
store = "generalise"
parts = 2
[create_date]
store = "keep"
[sent_at]
store = "truncate"
to = "day"
"#;

fn main() {
    let count: usize = (std::env::args().skip(1))
        .find_map(|a| a.parse().ok())
        .unwrap_or(50_000);
    let ring = KeyRing::parse(&keys::generate("k1").unwrap()).unwrap();
    let bodies = sample::generate(&SampleSpec {
        count,
        bad_share: 0.01,
        seed: 1,
    });
    let plain = Masker::hmac(&ring);
    let under = |policy: Policy| {
        let applier = Arc::new(Applier::new(policy, ring.clone()));
        applier.check_keys().unwrap();
        Masker::hmac(&ring).with_policy(applier)
    };
    let cases = [
        ("no policy (today's run)", plain),
        ("seed policy (--policy seed.toml)", under(Policy::seed())),
        (
            "device_id hmac/month, ip network /24, dates cut",
            under(Policy::parse(MONTHLY_NETWORK).unwrap()),
        ),
    ];
    println!("transform under a policy: {count} generated messages (1 % bad), one thread");
    let mut first = None;
    for (name, masker) in &cases {
        let now = chrono::Utc::now();
        let id = MessageId::from("bench");
        let started = Instant::now();
        let mut outcomes = 0usize;
        for body in &bodies {
            let message = Message {
                id: &id,
                body,
                sent_at: now,
                receive_count: 1,
                undated_copy: false,
            };
            outcomes += transform::process(message, masker, now).len();
        }
        let rate = outcomes as f64 / started.elapsed().as_secs_f64();
        let base = *first.get_or_insert(rate);
        println!(
            "  {name:<50} {rate:>10.0} logins/s  ({:.2} of no policy)",
            rate / base
        );
    }
}
