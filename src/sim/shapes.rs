//! Message bodies of every shape the pipeline takes, generated from the seed, each with what it
//! must become: one login (or a broken body) is one identity `(id, -1)`; a JSON array or NDJSON
//! body of n logins is n identities `(id, 0..n)`. Every login carries an IP address and a device
//! id drawn at random, and copies of them are planted in unknown fields, nested objects, broken
//! bodies and envelopes, so the PII check knows exactly which strings must never be stored.

use std::io::Write;

use base64::Engine;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

/// What a generated body must become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expect {
    /// One outcome for the whole message: a row if `true` (a valid login), else quarantined.
    Whole(bool),
    /// One outcome per element, in order: a row if `true`.
    Elements(Vec<bool>),
}

/// A generated message.
#[derive(Debug, Clone)]
pub(super) struct Spec {
    pub(super) body: String,
    pub(super) expect: Expect,
    /// The raw PII values planted in it.
    pub(super) pii: Vec<String>,
    /// The shape's name, for the coverage counts.
    pub(super) shape: &'static str,
    /// The user ids of its logins (the store's refusal predicates read them).
    pub(super) users: Vec<String>,
}

/// One login: its JSON, whether it is valid, its user id and its planted PII.
struct Login {
    value: Value,
    valid: bool,
    user: String,
    pii: Vec<String>,
}

fn ip(rng: &mut StdRng) -> String {
    if rng.gen_bool(0.2) {
        let h: Vec<String> = (0..4)
            .map(|_| format!("{:x}", rng.gen_range(0x1000..0xffffu32)))
            .collect();
        return format!("2001:db8::{}", h.join(":"));
    }
    let o: Vec<String> = (0..4)
        .map(|_| rng.gen_range(11..250u32).to_string())
        .collect();
    o.join(".")
}

fn device(rng: &mut StdRng) -> String {
    format!("dev-{:012x}", rng.gen_range(0..1u64 << 48))
}

fn user(rng: &mut StdRng) -> String {
    match rng.gen_range(0..100) {
        0..=5 => format!("refuse-{}", rng.gen_range(0..1000)),
        6..=17 => format!("pair-{}", rng.gen_range(0..3)),
        18..=25 => format!("count-{}", rng.gen_range(0..1000)),
        _ => format!("u-{}", rng.gen_range(0..100_000)),
    }
}

fn login(rng: &mut StdRng) -> Login {
    let (ip, device) = (ip(rng), device(rng));
    let user = user(rng);
    let mut value = json!({"user_id": user, "device_type": "ios", "ip": ip, "device_id": device,
        "locale": "FR", "app_version": "2.3.0"});
    let mut valid = true;
    match rng.gen_range(0..10) {
        0 => {
            value["note"] = json!(format!("seen at {ip} on {device}"));
        }
        1 => value["client"] = json!({"addr": ip, "hw": {"serial": device}}),
        2 => {
            value.as_object_mut().unwrap().remove("device_type");
            value["x"] = json!([ip, device]);
            valid = false;
        }
        3 => {
            value["ip"] = json!(format!("{device}"));
            valid = false;
        }
        4 => {
            value["device_id"] = json!(12345);
            value["extra"] = json!({"ip": ip});
            valid = false;
        }
        _ => {}
    }
    Login {
        value,
        valid,
        user,
        pii: vec![ip, device],
    }
}

/// A body that is not a login at all, with PII in it.
fn hostile(rng: &mut StdRng) -> (String, Vec<String>) {
    let (ip, device) = (ip(rng), device(rng));
    let body = match rng.gen_range(0..6) {
        0 => format!(r#"{{"user_id":"u-1","ip":"{ip}","device_id":"{device}""#),
        1 => format!(r#"{{"foo": "oops_wrong_msg_type", "bar": "{ip}", "baz": "{device}"}}"#),
        2 => {
            let depth = rng.gen_range(10..80);
            format!(
                "{}{{\"ip\":\"{ip}\",\"device_id\":\"{device}\"}}{}",
                "{\"a\":".repeat(depth),
                "}".repeat(depth)
            )
        }
        3 => format!(
            r#"{{"user_id":"u\u0000x","device_type":"ios","ip":"{ip}","device_id":"{device}"}}"#
        ),
        4 => format!("hello {ip} from {device}"),
        _ => format!(r#"{{"{ip}": "{device}", "user_id": 7}}"#),
    };
    (body, vec![ip, device])
}

/// Base64 of `text` gzipped in `members` members cut at random places, maybe wrapped at 76.
fn gzip(rng: &mut StdRng, text: &str, members: usize) -> String {
    let mut cuts: Vec<usize> = (1..members)
        .map(|_| rng.gen_range(0..=text.len()))
        .filter(|&c| text.is_char_boundary(c))
        .collect();
    cuts.push(0);
    cuts.push(text.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut bytes = Vec::new();
    for pair in cuts.windows(2) {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder
            .write_all(&text.as_bytes()[pair[0]..pair[1]])
            .unwrap();
        bytes.extend(encoder.finish().unwrap());
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    if rng.gen_bool(0.5) {
        let lines: Vec<&str> = (0..encoded.len())
            .step_by(76)
            .map(|i| &encoded[i..(i + 76).min(encoded.len())])
            .collect();
        return lines.join("\n");
    }
    encoded
}

/// One message of a shape drawn from the seed.
pub(super) fn message(rng: &mut StdRng) -> Spec {
    let one = |rng: &mut StdRng| login(rng);
    let (body, expect, pii, shape, users) = match rng.gen_range(0..100) {
        0..=29 => {
            let l = one(rng);
            (
                l.value.to_string(),
                Expect::Whole(l.valid),
                l.pii,
                "single",
                vec![l.user],
            )
        }
        30..=37 => {
            let (body, pii) = hostile(rng);
            (body, Expect::Whole(false), pii, "hostile", vec![])
        }
        38..=45 => {
            let l = one(rng);
            let sns = json!({"Type": "Notification", "MessageId": "n-1",
                "TopicArn": "arn:aws:sns:eu-west-1:1:logins", "Message": l.value.to_string(),
                "Timestamp": "2026-11-30T10:00:00.000Z"});
            (
                sns.to_string(),
                Expect::Whole(l.valid),
                l.pii,
                "sns",
                vec![l.user],
            )
        }
        46..=52 => {
            let l = one(rng);
            let event = json!({"version": "0", "id": "e-1", "detail-type": "login",
                "source": "app", "account": "1", "time": "2026-11-30T10:00:00Z",
                "region": "eu-west-1", "resources": [], "detail": l.value});
            (
                event.to_string(),
                Expect::Whole(l.valid),
                l.pii,
                "eventbridge",
                vec![l.user],
            )
        }
        _ => {
            let n = rng.gen_range(2..=6);
            let logins: Vec<Login> = (0..n).map(|_| one(rng)).collect();
            let ndjson = rng.gen_bool(0.5);
            let text = match ndjson {
                true => (logins.iter().map(|l| l.value.to_string()))
                    .collect::<Vec<_>>()
                    .join("\n"),
                false => Value::Array(logins.iter().map(|l| l.value.clone()).collect()).to_string(),
            };
            let expect = Expect::Elements(logins.iter().map(|l| l.valid).collect());
            let pii = logins.iter().flat_map(|l| l.pii.clone()).collect();
            let users = logins.iter().map(|l| l.user.clone()).collect();
            let shape = if ndjson { "ndjson" } else { "array" };
            (text, expect, pii, shape, users)
        }
    };
    // A share of every shape arrives as base64 of gzip, in one member or several.
    if rng.gen_bool(0.25) {
        let members = rng.gen_range(1..=4);
        let shape = if members > 1 { "gzip-members" } else { "gzip" };
        return Spec {
            body: gzip(rng, &body, members),
            expect,
            pii,
            shape,
            users,
        };
    }
    Spec {
        body,
        expect,
        pii,
        shape,
        users,
    }
}
