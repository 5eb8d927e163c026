//! parse → validate → mask, on arbitrary bodies. Invariants checked on every input:
//! nothing panics; a row's masks are well-formed and fit their column; a quarantined body keeps no
//! `ip` or `device_id` value that is not a mask. The first input byte picks hmac-sha256 or aes-siv.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use login_etl::mask::{KeyRing, Masker, StrategyName};
use login_etl::source::{Envelope, MessageId, ReceiptHandle};
use login_etl::transform::{self, OutcomeKind};
use serde_json::Value;

/// Both keyed strategies: the fuzzer's input picks one with its first byte.
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
fn is_mask(value: &Value) -> bool {
    value
        .as_str()
        .and_then(|s| s.strip_prefix("k1:"))
        .is_some_and(|payload| {
            !payload.is_empty()
                && payload
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn assert_masked(value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "ip" || key == "device_id" {
                    assert!(
                        v.is_null() || is_mask(v),
                        "raw {key} survived in a quarantined body"
                    );
                } else {
                    assert_masked(v);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(assert_masked),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let masker = &maskers()[usize::from(selector & 1)];
    let Ok(body) = std::str::from_utf8(data) else {
        return; // SQS bodies are always valid Unicode
    };
    let envelope = Envelope {
        message_id: MessageId::from("fuzz"),
        receipt_handle: ReceiptHandle(String::new()),
        body: body.to_string(),
        sent_at: chrono::Utc::now(),
        receive_count: 1,
        received: std::time::Instant::now(),
    };
    match transform::process(&envelope, masker, chrono::Utc::now()).kind {
        OutcomeKind::Row { login, .. } => {
            assert!(is_mask(&Value::from(login.masked_ip.as_str())));
            assert!(is_mask(&Value::from(login.masked_device_id.as_str())));
            assert!(login.masked_ip.len() <= 256 && login.masked_device_id.len() <= 256);
            assert!(login.user_id.chars().count() <= 128 && !login.user_id.contains('\0'));
        }
        OutcomeKind::Quarantine(q) => {
            assert!(!q.rejection.message.is_empty());
            if let Some(stored) = q.body_masked {
                let value: Value = serde_json::from_str(&stored).expect("stored body is JSON");
                assert_masked(&value);
            }
        }
    }
});
