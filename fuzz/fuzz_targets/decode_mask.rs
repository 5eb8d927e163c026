//! The whole pure middle (`transform::process_with`: unwrap → split → validate → mask, or scrub
//! into a quarantine record) on arbitrary bodies. Invariants checked on every input:
//! nothing panics; a row's masks are well-formed and fit their column; no raw `ip` or `device_id`
//! value of the message (at any depth, inside gzip, envelopes and JSON strings) appears in a
//! quarantined body, a rejection's text, a row's `extra_fields` or a metrics label.
//! The first input byte picks the decoding: bit 0 hmac-sha256 / aes-siv, bit 1 keep extra fields,
//! bit 2 `--envelope none`. `scripts/test.sh` runs it for a bounded time on every test run.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use login_etl::envelope::{Decoding, EnvelopeMode};
use login_etl::logins::{self, Logins};
use login_etl::mask::{KeyRing, Masker, StrategyName};
use login_etl::message::{Message, MessageId};
use login_etl::transform::{self, OutcomeKind};
use serde_json::Value;

/// Shorter PII values are not looked for: they could occur by chance in a mask or in the fixed
/// words of a scrubbed body (`#str`, `fingerprint`, …).
const MIN_LOOKED_FOR: usize = 8;
/// The scrubber decodes JSON inside strings this many levels (docs of `mask::scrub`).
const JSON_IN_STRING_LEVELS: usize = 2;
/// The scrubber replaces subtrees deeper than 32 with `#truncated`.
const MAX_DEPTH: usize = 30;

/// Both keyed strategies, with one key (id `k1`).
fn maskers() -> &'static [Masker; 2] {
    static MASKERS: OnceLock<[Masker; 2]> = OnceLock::new();
    MASKERS.get_or_init(|| {
        let keys = KeyRing::parse(&"5a".repeat(64)).unwrap();
        [
            Masker::new(StrategyName::HmacSha256, Some(&keys)).unwrap(),
            Masker::new(StrategyName::AesSiv, Some(&keys)).unwrap(),
        ]
    })
}

/// `k1:` followed by 64 hex characters (HMAC) or base64url (AES-SIV).
fn is_mask(text: &str) -> bool {
    text.strip_prefix("k1:").is_some_and(|payload| {
        !payload.is_empty()
            && payload
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// `ip`, `IP`, `device_id`, `deviceId`, `Device-ID`…
fn is_pii_name(name: &str) -> bool {
    let folded: String = (name.chars())
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    folded == "ip" || folded == "deviceid"
}

/// Every string or number under a PII name, at any depth, inside JSON strings too.
fn collect_pii(value: &Value, under_pii: bool, depth: usize, levels: usize, out: &mut Vec<String>) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::String(s) => {
            let inner = (levels < JSON_IN_STRING_LEVELS)
                .then(|| serde_json::from_str::<Value>(s).ok())
                .flatten()
                .filter(|v| v.is_object() || v.is_array());
            match inner {
                Some(inner) => collect_pii(&inner, under_pii, depth + 1, levels + 1, out),
                None if under_pii => out.push(s.trim().to_string()),
                None => {}
            }
        }
        Value::Number(n) if under_pii => out.push(n.to_string()),
        Value::Array(items) => {
            (items.iter()).for_each(|v| collect_pii(v, under_pii, depth + 1, levels, out))
        }
        Value::Object(map) => {
            for (k, v) in map {
                collect_pii(v, under_pii || is_pii_name(k), depth + 1, levels, out);
            }
        }
        _ => {}
    }
}

/// The raw PII values of `texts` (each one JSON value, or NDJSON), long enough to look for.
fn pii_of<'t>(texts: impl Iterator<Item = &'t str>) -> Vec<String> {
    let mut found = Vec::new();
    for text in texts {
        for part in std::iter::once(text).chain(text.lines()) {
            if let Ok(value) = serde_json::from_str::<Value>(part) {
                collect_pii(&value, false, 0, 0, &mut found);
            }
        }
    }
    found.retain(|v| v.chars().count() >= MIN_LOOKED_FOR);
    found.sort();
    found.dedup();
    found
}

/// The raw PII values of a body as the pipeline sees it (decompressed): of the whole message, and
/// of each login of a body of several. A refused login of several is scrubbed from its own text,
/// knowing its own PII values only, so its quarantine entry is checked against those: another
/// login's value in its kept fields is not caught (a known gap, in docs/testing.md "Untested").
fn raw_pii(body: &str, decoding: &Decoding) -> (Vec<String>, Vec<Vec<String>>) {
    let Ok(unwrapped) = login_etl::envelope::unwrap(body, decoding) else {
        return (pii_of(std::iter::once(body)), Vec::new());
    };
    let whole = pii_of(std::iter::once(unwrapped.body.as_ref()));
    let elements = match decoding.envelope {
        EnvelopeMode::None => Vec::new(),
        _ => match logins::split(&unwrapped.login, decoding.max_logins_per_message) {
            Ok(Logins::Many(texts)) => texts.iter().map(|t| pii_of(std::iter::once(*t))).collect(),
            _ => Vec::new(),
        },
    };
    (whole, elements)
}

/// Every key and string of a JSON value, decoded (a value with quotes is escaped in the text).
fn strings_of(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings_of(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                strings_of(v, out);
            }
        }
        _ => out.push(value.to_string()),
    }
}

fn assert_no_pii_in_json(pii: &[String], what: &str, value: &Value) {
    let mut strings = Vec::new();
    strings_of(value, &mut strings);
    for text in &strings {
        assert_no_pii(pii, what, text);
        assert!(
            !text.contains('\0'),
            "{what} holds \\u0000, which jsonb refuses"
        );
    }
}

/// Bytes hidden from libFuzzer: it intercepts memcmp and copies what it sees compared into its
/// inputs, so comparing the output with the raw values in the clear teaches it to make raw values
/// equal to pieces of masks or fixed wording. XORed bytes teach it nothing.
fn hidden(text: &str) -> Vec<u8> {
    text.bytes().map(|b| b ^ 0x5a).collect()
}

/// `text` with every mask and fingerprint (`k1:` and what follows) cut out: they are keyed
/// output, and a short raw value may occur in one by chance (a seed keeps such an input).
fn without_masks(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("k1:") {
        kept.push_str(&rest[..at]);
        kept.push('\u{1}');
        rest = rest[at..].trim_start_matches(|c: char| {
            c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ':'
        });
    }
    kept.push_str(rest);
    kept
}

/// `text` with every backticked field name of the login cut out: reasons name fields
/// (`validate.rs` builds them from its own names only), and a raw value may be such a name
/// (`"device_id": "device_type"` beside a second `device_type` key).
fn without_field_names(text: &str) -> String {
    (login_etl::validate::FIELDS.iter()).fold(text.to_string(), |text, name| {
        text.replace(&format!("`{name}`"), "\u{1}")
    })
}

/// `value` with every ASCII letter and digit shifted by one (`device_type` → `efwjdf_uzqf`).
fn shifted(value: &str) -> String {
    let shift = |c: char, first: char, count: u8| {
        let offset = (c as u8 - first as u8 + 1) % count;
        char::from(first as u8 + offset)
    };
    (value.chars())
        .map(|c| match c {
            'a'..='z' => shift(c, 'a', 26),
            'A'..='Z' => shift(c, 'A', 26),
            '0'..='9' => shift(c, '0', 10),
            other => other,
        })
        .collect()
}

/// The values of `pii` that a rejection's text may say without leaking them: the same body with
/// the value changed still gives a rejection that says it, so the text says it as fixed wording
/// (`"device_id": "device_type"` without a `device_type` field: "`device_type` is missing").
/// A value the body does not hold as written (escaped, compressed) is never excused.
fn said_anyway(
    pii: &[String],
    body: &str,
    rejections: impl Fn(&str) -> Vec<String>,
) -> Vec<String> {
    (pii.iter())
        .filter(|value| {
            let changed = shifted(value);
            body.contains(value.as_str())
                && changed != **value
                && (rejections(&body.replace(value.as_str(), &changed)).iter())
                    .any(|text| without_field_names(text).contains(value.as_str()))
        })
        .cloned()
        .collect()
}

/// The values of `pii` that are in `text` (masks cut out).
fn found_in(pii: &[String], text: &str) -> Vec<String> {
    let text = hidden(&without_masks(text));
    (pii.iter())
        .filter(|value| {
            let value = hidden(value);
            text.windows(value.len()).any(|w| w == value.as_slice())
        })
        .cloned()
        .collect()
}

fn assert_no_pii(pii: &[String], what: &str, text: &str) {
    assert!(
        found_in(pii, text).is_empty(),
        "a raw ip/device_id value is in {what}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let Ok(body) = std::str::from_utf8(data) else {
        return; // SQS bodies are always valid Unicode
    };
    let masker = &maskers()[usize::from(selector & 1)];
    let decoding = Decoding {
        keep_extra_fields: selector & 2 != 0,
        envelope: if selector & 4 != 0 {
            EnvelopeMode::None
        } else {
            EnvelopeMode::Auto
        },
        ..Decoding::default()
    };
    let (whole, of_element) = raw_pii(body, &decoding);
    let id = MessageId::from("fuzz");
    let message = Message {
        id: &id,
        body,
        sent_at: chrono::Utc::now(),
        receive_count: 1,
        undated_copy: false,
    };
    let process = |body: &str| {
        let message = Message { body, ..message };
        transform::process_with(message, masker, &decoding, chrono::Utc::now())
    };
    let rejections = |body: &str| -> Vec<String> {
        (process(body).into_iter())
            .filter_map(|outcome| match outcome.kind {
                OutcomeKind::Quarantine(q) => Some(q.rejection.message),
                OutcomeKind::Row { .. } => None,
            })
            .collect()
    };
    let outcomes = process(body);
    assert!(!outcomes.is_empty(), "every message has an outcome");
    for outcome in outcomes {
        assert_eq!(outcome.message_id, id);
        let own = (outcome.element)
            .and_then(|i| of_element.get(i as usize))
            .unwrap_or(&whole);
        for label in &outcome.unknown_fields {
            assert_no_pii(&whole, "a metrics label", label);
        }
        match outcome.kind {
            OutcomeKind::Row {
                login,
                extra_fields,
                ..
            } => {
                let (ip, device) = (login.masked_ip.unwrap(), login.masked_device_id.unwrap());
                assert!(is_mask(&ip) && is_mask(&device));
                assert!(ip.len() <= 256 && device.len() <= 256);
                assert!(login.user_id.chars().count() <= 128 && !login.user_id.contains('\0'));
                if let Some(extra) = extra_fields {
                    assert_no_pii_in_json(own, "extra_fields", &extra);
                }
            }
            OutcomeKind::Quarantine(q) => {
                assert!(!q.rejection.message.is_empty());
                let text = &q.rejection.message;
                let text = &without_field_names(text);
                let leaked = found_in(&whole, text);
                let excused = said_anyway(&leaked, body, rejections);
                let leaked: Vec<String> = (leaked.into_iter())
                    .filter(|value| !excused.contains(value))
                    .collect();
                assert_no_pii(&leaked, "a rejection's text", text);
                let stored: Value =
                    serde_json::from_str(&q.body_masked).expect("a stored body is JSON");
                assert_no_pii_in_json(own, "a quarantined body", &stored);
                if let Some(user) = &q.user_id {
                    assert_no_pii(own, "a quarantine user_id", user);
                }
            }
        }
    }
});
