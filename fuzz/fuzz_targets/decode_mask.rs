//! parse → validate → mask, on arbitrary bodies. Invariants checked on every input:
//! nothing panics; a row's masks are 64 hex characters; a quarantined body keeps no `ip` or
//! `device_id` value that is not a mask.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use login_etl::mask::{MaskKey, Masker};
use login_etl::source::Envelope;
use login_etl::transform::{self, OutcomeKind};
use serde_json::Value;

fn masker() -> &'static Masker {
    static MASKER: OnceLock<Masker> = OnceLock::new();
    MASKER.get_or_init(|| Masker::new(&MaskKey::from_hex(&"5a".repeat(32)).unwrap()))
}

fn is_mask(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn assert_masked(value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "ip" || key == "device_id" {
                    assert!(v.is_null() || is_mask(v), "raw {key} survived in a quarantined body");
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
    let Ok(body) = std::str::from_utf8(data) else {
        return; // SQS bodies are always valid Unicode
    };
    let envelope = Envelope {
        message_id: "fuzz".into(),
        receipt_handle: String::new(),
        body: body.to_string(),
        sent_at: chrono::Utc::now(),
        receive_count: 1,
        received: std::time::Instant::now(),
    };
    match transform::process(&envelope, masker(), 5, chrono::Utc::now()).kind {
        OutcomeKind::Row { login, .. } => {
            assert_eq!(login.masked_ip.len(), 64);
            assert_eq!(login.masked_device_id.len(), 64);
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
