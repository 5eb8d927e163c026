//! The pure middle of the pipeline: one received message in, one [`Outcome`] out.
//!
//! Decoding ([`crate::event`]) and masking ([`crate::mask`]) meet here; what leaves this module holds
//! no raw `ip` or `device_id`, whichever way the message went.

use chrono::{DateTime, Utc};

use crate::event::{self, RejectCode, Rejection};
use crate::mask::Masker;
use crate::message::Message;
pub use crate::message::{Outcome, OutcomeKind, QuarantineRecord};
use crate::unwrap::{self, Decoding, EnvelopeKind};

/// Decide what a message becomes: a masked row, or a quarantine entry with the reason, with the
/// default decoding (envelopes recognised, base64+gzip up to 1 MiB).
pub fn process<'a>(
    message: impl Into<Message<'a>>,
    masker: &Masker,
    received_at: DateTime<Utc>,
) -> Outcome {
    process_with(message, masker, &Decoding::default(), received_at)
}

/// [`process`] with the run's `--envelope` and `--max-decompressed-bytes`: wrappers come off
/// first ([`crate::unwrap`]), then the login is validated and masked. A refused login in an
/// envelope says which in its reason; quarantine keeps the decompressed body, scrubbed.
pub fn process_with<'a>(
    message: impl Into<Message<'a>>,
    masker: &Masker,
    decoding: &Decoding,
    received_at: DateTime<Utc>,
) -> Outcome {
    let message = message.into();
    let unwrapped = match unwrap::unwrap(message.body, decoding) {
        Ok(unwrapped) => unwrapped,
        Err(rejection) => return quarantine(message, masker, rejection, received_at),
    };
    let mut outcome = match event::decode(&unwrapped.login) {
        Ok(mut event) => Outcome {
            message_id: message.id.clone(),
            unknown_fields: unknown_field_labels(&mut event),
            kind: OutcomeKind::Row {
                login: masker.mask_event(event),
                create_date: message.sent_at.date_naive(),
                sent_at: unwrapped.sent_at.unwrap_or(message.sent_at),
            },
            envelope: unwrapped.envelope,
            compressed: unwrapped.compressed,
        },
        Err(mut rejection) => {
            if unwrapped.envelope != EnvelopeKind::None {
                rejection.message = format!(
                    "{} envelope: {}: {}",
                    unwrapped.envelope.as_str(),
                    rejection.code,
                    rejection.message
                );
            }
            let body = Message {
                body: &unwrapped.body,
                ..message
            };
            quarantine(body, masker, rejection, received_at)
        }
    };
    outcome.envelope = unwrapped.envelope;
    outcome.compressed = unwrapped.compressed;
    outcome
}

/// The outcome of a poison message: one that was processed alone `solo_attempts` times, more
/// than `max_receives`, and never finished (each attempt died with its consumer or failed).
pub(crate) fn poison<'a>(
    message: impl Into<Message<'a>>,
    masker: &Masker,
    solo_attempts: u32,
    max_receives: u32,
    received_at: DateTime<Utc>,
) -> Outcome {
    let message = message.into();
    let rejection = Rejection::new(
        RejectCode::TooManyReceives,
        format!(
            "processed alone {} times without finishing, more than --max-receives {max_receives} \
             (received {} times in all)",
            solo_attempts - 1,
            message.receive_count
        ),
    );
    quarantine(message, masker, rejection, received_at)
}

/// The quarantine outcome of a message, for a rejection found here or later (by the database).
pub fn quarantine<'a>(
    message: impl Into<Message<'a>>,
    masker: &Masker,
    rejection: Rejection,
    received_at: DateTime<Utc>,
) -> Outcome {
    let message = message.into();
    let scrubbed = masker.scrub_body(message.body);
    Outcome {
        message_id: message.id.clone(),
        kind: OutcomeKind::Quarantine(QuarantineRecord {
            rejection,
            received_at,
            sent_at: message.sent_at,
            receive_count: message.receive_count,
            body_bytes: message.body.len(),
            body_masked: scrubbed.json,
            user_id: scrubbed.user_id,
            key_id: masker.key_id().map(String::from),
        }),
        envelope: EnvelopeKind::None,
        compressed: false,
        unknown_fields: Vec::new(),
    }
}

/// The unknown field names of a valid login as metric labels: a name that could be a value (not
/// plain, or equal to the login's own device id) is `other`.
fn unknown_field_labels(event: &mut crate::event::LoginEvent) -> Vec<String> {
    let device = event.device_id.to_lowercase();
    std::mem::take(&mut event.unknown_fields)
        .into_iter()
        .map(|name| {
            if crate::mask::is_plain_name(&name) && name.to_lowercase() != device {
                name
            } else {
                "other".to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::KeyRing;
    use crate::source::Envelope;
    use chrono::{NaiveDate, TimeZone};

    fn envelope(body: &str, receive_count: u32) -> Envelope {
        Envelope {
            message_id: "m-1".into(),
            receipt_handle: crate::source::ReceiptHandle("r".into()),
            body: body.into(),
            sent_at: Utc.with_ymd_and_hms(2025, 3, 4, 23, 59, 59).unwrap(),
            receive_count,
            received: std::time::Instant::now(),
        }
    }

    fn masker() -> Masker {
        Masker::hmac(&KeyRing::parse(&"11".repeat(32)).unwrap())
    }

    #[test]
    fn good_message_becomes_a_masked_row_dated_by_sent_timestamp() {
        let body = r#"{"user_id":"u","device_type":"ios","ip":"10.0.0.1","device_id":"593-47-5928","locale":null,"app_version":"0.96"}"#;
        let outcome = process(&envelope(body, 1), &masker(), Utc::now());
        let OutcomeKind::Row {
            login, create_date, ..
        } = outcome.kind
        else {
            panic!("expected a row")
        };
        assert_eq!(create_date, NaiveDate::from_ymd_opt(2025, 3, 4).unwrap());
        assert_eq!(login.masked_ip.len(), "k1:".len() + 64);
        assert_eq!(login.app_version.as_deref(), Some("0.96"));
    }

    #[test]
    fn quarantined_body_keeps_no_raw_pii_even_nested() {
        let body = r#"{"ip":"10.0.0.1","device_id":"593-47-5928","nested":{"ip":"10.9.9.9","list":[{"device_id":"111-22-3333"}]}}"#;
        let outcome = process(&envelope(body, 1), &masker(), Utc::now());
        let OutcomeKind::Quarantine(q) = outcome.kind else {
            panic!("expected quarantine")
        };
        let stored = q.body_masked;
        for raw in ["10.0.0.1", "593-47-5928", "10.9.9.9", "111-22-3333"] {
            assert!(!stored.contains(raw), "{raw} leaked into {stored}");
            assert!(!q.rejection.message.contains(raw));
        }
        assert_eq!(q.body_bytes, body.len());
    }

    #[test]
    fn non_json_bodies_keep_only_their_size_and_fingerprint() {
        let outcome = process(
            &envelope(r#"{"ip": "10.0.0.1", "dev"#, 1),
            &masker(),
            Utc::now(),
        );
        let OutcomeKind::Quarantine(q) = outcome.kind else {
            panic!("expected quarantine")
        };
        assert!(!q.body_masked.contains("10.0.0.1"));
        assert!(
            q.body_masked.starts_with(r##"{"#not_json":"##),
            "{}",
            q.body_masked
        );
        assert_eq!(q.rejection.code, RejectCode::InvalidJson);
    }

    #[test]
    fn unknown_fields_become_labels_unless_they_could_be_values() {
        let body = r#"{"user_id":"u","device_type":"ios","ip":"10.0.0.1","device_id":"abcdef","campaign":1,"Abcdef":2,"dev-207":3,"10.0.0.9":4}"#;
        let outcome = process(&envelope(body, 1), &masker(), Utc::now());
        assert!(matches!(outcome.kind, OutcomeKind::Row { .. }));
        assert_eq!(
            outcome.unknown_fields,
            ["campaign", "other", "other", "other"]
        );
    }

    #[test]
    fn a_poison_message_is_quarantined_even_if_valid() {
        let body = r#"{"user_id":"u","device_type":"ios","ip":"10.0.0.1","device_id":"d"}"#;
        let outcome = poison(&envelope(body, 9), &masker(), 6, 5, Utc::now());
        let OutcomeKind::Quarantine(q) = outcome.kind else {
            panic!("expected quarantine")
        };
        assert_eq!(q.rejection.code, RejectCode::TooManyReceives);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use serde_json::{json, Value};

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                ".{0,24}".prop_map(Value::String),
                "[0-9.:a-f ]{0,24}".prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(key(), inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("ip".to_string()),
                Just("device_id".to_string()),
                Just("user_id".to_string()),
                Just("device_type".to_string()),
                Just("locale".to_string()),
                Just("app_version".to_string()),
                "[a-z_]{1,8}",
            ]
        }

        fn is_mask(value: &Value) -> bool {
            value
                .as_str()
                .and_then(|s| s.strip_prefix("k1:"))
                .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        }

        /// Every scalar under `ip`/`device_id` left in a stored body, at any depth, is a mask
        /// (or null, or a boolean).
        fn only_masks(value: &Value, under_pii: bool) -> bool {
            match value {
                Value::Object(map) => map
                    .iter()
                    .all(|(k, v)| only_masks(v, under_pii || k == "ip" || k == "device_id")),
                Value::Array(items) => items.iter().all(|v| only_masks(v, under_pii)),
                Value::Null | Value::Bool(_) => true,
                scalar => !under_pii || is_mask(scalar),
            }
        }

        proptest! {
            #[test]
            fn any_object_yields_masked_rows_or_a_quarantine_without_raw_pii(
                fields in prop::collection::btree_map(key(), json_value(), 0..8)
            ) {
                let body = Value::Object(fields.into_iter().collect()).to_string();
                match process(&envelope(&body, 1), &masker(), Utc::now()).kind {
                    OutcomeKind::Row { login, .. } => {
                        prop_assert!(is_mask(&json!(login.masked_ip)));
                        prop_assert!(is_mask(&json!(login.masked_device_id)));
                    }
                    OutcomeKind::Quarantine(q) => {
                        let stored: Value = serde_json::from_str(&q.body_masked).unwrap();
                        prop_assert!(only_masks(&stored, false));
                    }
                }
            }

            #[test]
            fn valid_events_always_become_rows_with_deterministic_masks(
                user in "[a-zA-Z0-9-]{1,64}",
                octets in any::<[u8; 4]>(),
                device in "[0-9]{3}-[0-9]{2}-[0-9]{4}",
                locale in proptest::option::of("[A-Z]{2}"),
            ) {
                let ip = std::net::Ipv4Addr::from(octets).to_string();
                let body = json!({"user_id": user, "device_type": "ios", "ip": ip,
                                  "device_id": device, "locale": locale}).to_string();
                let a = process(&envelope(&body, 1), &masker(), Utc::now());
                let mapped = body.replace(&format!("\"{ip}\""), &format!("\"::ffff:{ip}\""));
                let b = process(&envelope(&mapped, 1), &masker(), Utc::now());
                let is_row = matches!(a.kind, OutcomeKind::Row { .. });
                prop_assert!(is_row, "a valid event was quarantined");
                prop_assert_eq!(a.kind, b.kind);
            }
        }
    }
}
