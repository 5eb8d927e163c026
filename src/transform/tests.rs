//! Unit and property tests of `transform`.

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
        undated_copy: false,
        chunk_of: None,
        received: std::time::Instant::now(),
    }
}

/// The one outcome of a message of one login.
fn only(mut outcomes: Vec<Outcome>) -> Outcome {
    assert_eq!(outcomes.len(), 1);
    outcomes.remove(0)
}

fn masker() -> Masker {
    Masker::hmac(&KeyRing::parse(&"11".repeat(32)).unwrap())
}

#[test]
fn good_message_becomes_a_masked_row_dated_by_sent_timestamp() {
    let body = r#"{"user_id":"u","device_type":"ios","ip":"10.0.0.1","device_id":"593-47-5928","locale":null,"app_version":"0.96"}"#;
    let outcome = only(process(&envelope(body, 1), &masker(), Utc::now()));
    let OutcomeKind::Row {
        login, create_date, ..
    } = outcome.kind
    else {
        panic!("expected a row")
    };
    assert_eq!(create_date, NaiveDate::from_ymd_opt(2025, 3, 4).unwrap());
    assert_eq!(
        login.masked_ip.as_deref().map(str::len),
        Some("k1:".len() + 64)
    );
    assert_eq!(login.app_version.as_deref(), Some("0.96"));
}

#[test]
fn quarantined_body_keeps_no_raw_pii_even_nested() {
    let body = r#"{"ip":"10.0.0.1","device_id":"593-47-5928","nested":{"ip":"10.9.9.9","list":[{"device_id":"111-22-3333"}]}}"#;
    let outcome = only(process(&envelope(body, 1), &masker(), Utc::now()));
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
    let outcome = only(process(
        &envelope(r#"{"ip": "10.0.0.1", "dev"#, 1),
        &masker(),
        Utc::now(),
    ));
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
    let outcome = only(process(&envelope(body, 1), &masker(), Utc::now()));
    assert!(matches!(outcome.kind, OutcomeKind::Row { .. }));
    assert_eq!(
        outcome.unknown_fields,
        ["campaign", "other", "other", "other"]
    );
}

#[test]
fn a_login_of_ever_more_field_names_keeps_at_most_the_bound_and_still_lands() {
    let extra: String = (0..500).map(|i| format!(r#","f_{i}_x":{i}"#)).collect();
    let body =
        format!(r#"{{"user_id":"u","device_type":"ios","ip":"10.0.0.1","device_id":"d"{extra}}}"#);
    let outcome = only(process(&envelope(&body, 1), &masker(), Utc::now()));
    assert!(
        matches!(outcome.kind, OutcomeKind::Row { .. }),
        "the login lands"
    );
    assert_eq!(
        outcome.unknown_fields.len(),
        crate::validate::MAX_UNKNOWN_FIELDS
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

const VALID: &str =
    r#"{"user_id":"u","device_type":"ios","ip":"10.0.0.1","device_id":"593-47-5928"}"#;

#[test]
fn each_login_of_an_array_lands_alone_with_its_index_in_the_reason() {
    let body = format!(
        r#"[{VALID}, {{"user_id":"v","ip":"10.0.0.2","device_id":"111-22-3333"}}, 7, {VALID}]"#
    );
    let outcomes = process(&envelope(&body, 1), &masker(), Utc::now());
    let kinds: Vec<_> = outcomes
        .iter()
        .map(|o| (o.element, matches!(o.kind, OutcomeKind::Row { .. })))
        .collect();
    assert_eq!(
        kinds,
        [
            (Some(0), true),
            (Some(1), false),
            (Some(2), false),
            (Some(3), true)
        ]
    );
    assert!(outcomes.iter().all(|o| o.message_id.as_str() == "m-1"));
    let OutcomeKind::Quarantine(q) = &outcomes[1].kind else {
        panic!()
    };
    assert!(
        q.rejection
            .message
            .starts_with("element [1] of 4: invalid_fields: "),
        "{}",
        q.rejection.message
    );
    assert!(!q.body_masked.contains("10.0.0.2") && !q.body_masked.contains("111-22-3333"));
    assert_eq!(
        q.body_bytes,
        r#"{"user_id":"v","ip":"10.0.0.2","device_id":"111-22-3333"}"#.len()
    );
    // The same logins as NDJSON inside an SNS notification: the reason names both.
    let ndjson = format!("{VALID}\n{{\"user_id\":1}}");
    let sns = serde_json::json!({"Type": "Notification", "MessageId": "n", "TopicArn": "arn:aws:sns:eu-west-1:1:t", "Message": ndjson}).to_string();
    let outcomes = process(&envelope(&sns, 1), &masker(), Utc::now());
    let OutcomeKind::Quarantine(q) = &outcomes[1].kind else {
        panic!()
    };
    assert!(
        q.rejection
            .message
            .starts_with("sns envelope: element [1] of 2: invalid_fields: "),
        "{}",
        q.rejection.message
    );
    assert!(outcomes.iter().all(|o| o.envelope == EnvelopeKind::Sns));
}

#[test]
fn too_many_logins_is_one_entry_and_envelope_none_splits_nothing() {
    let body = format!("[{}]", [VALID; 3].join(","));
    let capped = Decoding {
        max_logins_per_message: 2,
        ..Decoding::default()
    };
    let outcomes = process_with(&envelope(&body, 1), &masker(), &capped, Utc::now());
    let [outcome] = outcomes.as_slice() else {
        panic!("{outcomes:?}")
    };
    let OutcomeKind::Quarantine(q) = &outcome.kind else {
        panic!()
    };
    assert_eq!(q.rejection.code, RejectCode::TooManyLogins);
    assert!(q.rejection.message.contains("of 3 logins"));
    assert!(!q.body_masked.contains("10.0.0.1"));
    let none = Decoding {
        envelope: crate::envelope::EnvelopeMode::None,
        ..Decoding::default()
    };
    let outcomes = process_with(&envelope(&body, 1), &masker(), &none, Utc::now());
    let OutcomeKind::Quarantine(q) = &only(outcomes).kind else {
        panic!()
    };
    assert_eq!(q.rejection.code, RejectCode::NotAnObject);
}

#[test]
fn a_refused_element_is_quarantined_from_its_own_text() {
    let body = format!(
        r#"[{VALID}, {{"user_id":"w","device_type":"ios","ip":"10.0.0.3","device_id":"d"}}]"#
    );
    let rejection = Rejection::new(
        RejectCode::RejectedByDatabase,
        "PostgreSQL rejected the row: x",
    );
    let outcome = refuse_element(
        &envelope(&body, 1),
        &masker(),
        &Decoding::default(),
        1,
        rejection.clone(),
    )
    .unwrap();
    let OutcomeKind::Quarantine(q) = &outcome.kind else {
        panic!()
    };
    assert_eq!(outcome.element, Some(1));
    assert_eq!(q.user_id.as_deref(), Some("w"));
    assert!(q
        .rejection
        .message
        .starts_with("element [1] of 2: rejected_by_database: "));
    assert!(refuse_element(
        &envelope(&body, 1),
        &masker(),
        &Decoding::default(),
        2,
        rejection
    )
    .is_none());
    assert_eq!(
        element_text(&body, &Decoding::default(), 0).as_deref(),
        Some(VALID)
    );
}

/// A replayed EventBridge archive or SNS redelivery is dated by the event, not by the replay.
#[test]
fn an_envelope_time_dates_the_row_and_the_quarantine_entry() {
    let login = r#"{"user_id":"u","device_type":"ios","ip":"10.0.0.1","device_id":"d-1"}"#;
    for (time, detail) in [
        ("2020-02-29T23:59:58Z", login),
        ("2019-07-01T00:00:01Z", "{}"),
    ] {
        let event = format!(
            r#"{{"version":"0","id":"e","detail-type":"login","source":"app","time":"{time}","detail":{detail}}}"#
        );
        let expected: DateTime<Utc> = time.parse().unwrap();
        match only(process(&envelope(&event, 1), &masker(), Utc::now())).kind {
            OutcomeKind::Row {
                create_date,
                sent_at,
                ..
            } => assert_eq!((create_date, sent_at), (expected.date_naive(), expected)),
            OutcomeKind::Quarantine(q) => assert_eq!(q.sent_at, expected),
        }
    }
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
            match only(process(&envelope(&body, 1), &masker(), Utc::now())).kind {
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
        fn any_array_yields_one_outcome_per_element_without_raw_pii(
            elements in prop::collection::vec(json_value(), 1..12)
        ) {
            let body = Value::Array(elements.clone()).to_string();
            let outcomes = process(&envelope(&body, 1), &masker(), Utc::now());
            prop_assert_eq!(outcomes.len(), elements.len());
            for (i, outcome) in outcomes.iter().enumerate() {
                prop_assert_eq!(outcome.element, Some(i as u32));
                if let OutcomeKind::Quarantine(q) = &outcome.kind {
                    // Every element is JSON, so every stored body is JSON: none is skipped.
                    let stored = serde_json::from_str::<Value>(&q.body_masked);
                    prop_assert!(stored.is_ok(), "stored body is not JSON: {}", q.body_masked);
                    prop_assert!(only_masks(&stored.unwrap(), false));
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
            let a = only(process(&envelope(&body, 1), &masker(), Utc::now()));
            let mapped = body.replace(&format!("\"{ip}\""), &format!("\"::ffff:{ip}\""));
            let b = only(process(&envelope(&mapped, 1), &masker(), Utc::now()));
            let is_row = matches!(a.kind, OutcomeKind::Row { .. });
            prop_assert!(is_row, "a valid event was quarantined");
            prop_assert_eq!(a.kind, b.kind);
        }
    }
}

/// Review finding: the envelope's time is the producer's word (EventBridge `PutEvents` lets the
/// caller set `time`; any raw body shaped like an event is taken as one). An event dated after SQS
/// received it cannot be true, yet it dates the row: a date months ahead lands in
/// `user_logins_default` and then blocks creating that month's partition (PostgreSQL refuses a
/// partition whose rows sit in DEFAULT: 23514), and a year-9999 row outlives every retention.
/// Rule wanted: an envelope time later than SentTimestamp (plus a small slack) is not used.
#[test]
fn an_envelope_time_after_sqs_received_the_message_does_not_date_the_row() {
    let login = r#"{"user_id":"u","device_type":"ios","ip":"10.0.0.1","device_id":"d-1"}"#;
    let sent = envelope("", 1).sent_at;
    for time in ["2025-09-15T00:00:00Z", "9999-12-31T23:59:59Z"] {
        let event = format!(
            r#"{{"version":"0","id":"e","detail-type":"login","source":"app","time":"{time}","detail":{login}}}"#
        );
        let OutcomeKind::Row { create_date, .. } =
            only(process(&envelope(&event, 1), &masker(), Utc::now())).kind
        else {
            panic!("expected a row")
        };
        assert!(
            create_date <= sent.date_naive() + chrono::Days::new(1),
            "an event claiming {time} dates a row sent on {sent} as {create_date}"
        );
    }
}

/// Attack review F6: an envelope time before any real login (year 0, a zeroed clock) dated the
/// row in 1 BC. Rule: an envelope time before 2000 is not used; an old but real one still is.
#[test]
fn an_envelope_time_before_any_real_login_does_not_date_the_row() {
    let login = r#"{"user_id":"u","device_type":"ios","ip":"10.0.0.1","device_id":"d-1"}"#;
    let sent = envelope("", 1).sent_at;
    for (time, dated) in [
        ("0000-01-01T00:00:00Z", None),
        ("1970-01-01T00:00:00Z", None),
        ("2001-02-03T04:05:06Z", Some("2001-02-03")),
    ] {
        let event = format!(
            r#"{{"version":"0","id":"e","detail-type":"login","source":"app","time":"{time}","detail":{login}}}"#
        );
        let OutcomeKind::Row { create_date, .. } =
            only(process(&envelope(&event, 1), &masker(), Utc::now())).kind
        else {
            panic!("expected a row")
        };
        let expected = dated.map_or(sent.date_naive(), |d| d.parse().unwrap());
        assert_eq!(create_date, expected, "an event claiming {time}");
    }
}

/// Issue 34, item 4: an EventBridge archive exported as NDJSON (an S3 object's lines) is a body of
/// envelopes: each element's login is validated and dated by its own time, not quarantined as a
/// login missing its fields; an element whose time cannot be true takes the message's.
#[test]
fn elements_in_envelopes_of_their_own_are_unwrapped_and_dated_by_them() {
    let login = |u: &str| {
        format!(r#"{{"user_id":"{u}","device_type":"ios","ip":"10.0.0.1","device_id":"d-1"}}"#)
    };
    let event = |u: &str, time: &str| {
        format!(
            r#"{{"version":"0","id":"e-{u}","detail-type":"login","source":"app","time":"{time}","detail":{}}}"#,
            login(u)
        )
    };
    let body = format!(
        "{}\n{}\n{}",
        event("a", "2025-01-02T03:04:05Z"),
        event("b", "1999-01-01T00:00:00Z"),
        login("c")
    );
    let message = envelope(&body, 1);
    let outcomes = process(&message, &masker(), Utc::now());
    let dates: Vec<(String, chrono::NaiveDate)> = (outcomes.iter())
        .map(|o| match &o.kind {
            OutcomeKind::Row {
                login, create_date, ..
            } => (login.user_id.clone(), *create_date),
            OutcomeKind::Quarantine(q) => panic!("quarantined: {}", q.rejection),
        })
        .collect();
    let sent = message.sent_at.date_naive();
    assert_eq!(
        dates,
        vec![
            ("a".to_string(), "2025-01-02".parse().unwrap()),
            ("b".to_string(), sent),
            ("c".to_string(), sent),
        ]
    );
}
