//! A corpus of malformed and adversarial message bodies, drained through the real pipeline. For
//! each one: the run completes, the message lands exactly once (as a row or as a quarantine entry
//! with a precise reason), and no raw `ip` / `device_id` is stored anywhere.

use std::collections::HashMap;

use crate::helpers::*;
use login_etl::mask::Field;
use serde_json::{json, Value};

enum Expect {
    /// A row for this (unique) user_id.
    Row(&'static str),
    /// Quarantined with this reason code and a reason containing this text.
    Quarantine(&'static str, &'static str),
}
use Expect::*;

/// A valid login with one field replaced (or removed, with `Value::Null` and `remove = true`).
fn login_with(user: &str, field: &str, value: Value) -> String {
    let mut m = json!({
        "user_id": user, "app_version": "2.3.0", "device_type": "android",
        "ip": "198.51.100.23", "locale": "RU", "device_id": "hostile-device-01"
    });
    m[field] = value;
    m.to_string()
}

fn corpus() -> Vec<(String, Expect)> {
    let deep = format!(
        r#"{{"user_id": {}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let max_body = {
        let base = login_with("u-max", "device_id", json!(""));
        let pad = 262_144 - base.len();
        login_with("u-max", "device_id", json!("7".repeat(pad)))
    };
    vec![
        // Not JSON.
        (r#"{"user_id": "u", "ip": "198.51.100.1""#.into(), Quarantine("invalid_json", "EOF while parsing")),
        (" ".into(), Quarantine("invalid_json", "EOF while parsing")),
        ("login ok from 198.51.100.2".into(), Quarantine("invalid_json", "expected value")),
        ("{'user_id': 'single quotes'}".into(), Quarantine("invalid_json", "key must be a string")),
        (r#"{"user_id": "u",}"#.into(), Quarantine("invalid_json", "trailing comma")),
        (r#"{"a": 1}{"b": 2}"#.into(), Quarantine("invalid_json", "trailing characters")),
        (deep, Quarantine("invalid_json", "recursion limit exceeded")),
        (r#"{"user_id": "\ud800"}"#.into(), Quarantine("invalid_json", "hex escape")),
        ("{\"user_id\": \"tab\there\"}".into(), Quarantine("invalid_json", "control character")),
        (r#"{"ip": NaN}"#.into(), Quarantine("invalid_json", "expected value")),
        (r#"{"user_id": 1e999999}"#.into(), Quarantine("invalid_json", "number out of range")),
        ("\u{feff}{\"user_id\": \"bom\"}".into(), Quarantine("invalid_json", "expected value")),
        // JSON, but not an object.
        // An array is a body of several logins: empty, or holding one that is invalid.
        ("[]".into(), Quarantine("not_an_object", "an empty JSON array holds no login")),
        (r#"[{"ip": "198.51.100.3"}]"#.into(), Quarantine("invalid_fields", "element [0] of 1: invalid_fields: ")),
        (r#""198.51.100.4""#.into(), Quarantine("not_an_object", "got a string")),
        ("42".into(), Quarantine("not_an_object", "got a number")),
        ("-1.5e3".into(), Quarantine("not_an_object", "got a number")),
        ("true".into(), Quarantine("not_an_object", "got a boolean")),
        ("null".into(), Quarantine("not_an_object", "got null")),
        // Ambiguous objects.
        (
            r#"{"user_id":"u","device_type":"ios","ip":"198.51.100.5","ip":"198.51.100.6","device_id":"hostile-device-02"}"#.into(),
            Quarantine("duplicate_key", "key `ip` appears more than once"),
        ),
        (
            r#"{"user_id":"u1","user_id":"u2","device_type":"ios","ip":"198.51.100.7","device_id":"hostile-device-03"}"#.into(),
            Quarantine("duplicate_key", "key `user_id` appears more than once"),
        ),
        // Missing, null and wrongly typed fields.
        ("{}".into(), Quarantine("invalid_fields", "`user_id` is missing; `device_type` is missing; `ip` is missing; `device_id` is missing")),
        (r#"{"foo": "oops_wrong_msg_type", "bar": "123"}"#.into(), Quarantine("invalid_fields", "`user_id` is missing")),
        (login_with("u", "user_id", json!(12345)), Quarantine("invalid_fields", "`user_id` must be a string, got a number")),
        (login_with("u", "user_id", json!(true)), Quarantine("invalid_fields", "`user_id` must be a string, got a boolean")),
        (login_with("u", "user_id", json!({"id": "u"})), Quarantine("invalid_fields", "`user_id` must be a string, got an object")),
        (login_with("u", "user_id", json!(["u"])), Quarantine("invalid_fields", "`user_id` must be a string, got an array")),
        (login_with("u", "ip", json!(3325256807u64)), Quarantine("invalid_fields", "`ip` must be a string, got a number")),
        (login_with("u", "ip", json!({"v4": "198.51.100.8"})), Quarantine("invalid_fields", "`ip` must be a string, got an object")),
        (login_with("u", "device_id", Value::Null), Quarantine("invalid_fields", "`device_id` is null")),
        (login_with("u", "device_id", json!(5934759)), Quarantine("invalid_fields", "`device_id` must be a string, got a number")),
        (login_with("u", "device_type", json!("")), Quarantine("invalid_fields", "`device_type` is empty")),
        (login_with("   ", "locale", json!("RU")), Quarantine("invalid_fields", "`user_id` is empty")),
        (login_with("u", "app_version", json!(3.7)), Quarantine("invalid_fields", "`app_version` must be a string or null, got a number")),
        (login_with("u", "app_version", json!(false)), Quarantine("invalid_fields", "`app_version` must be a string or null, got a boolean")),
        (login_with("u", "locale", json!(7)), Quarantine("invalid_fields", "`locale` must be a string or null, got a number")),
        // Too long for the column (counted in characters, as PostgreSQL does).
        (login_with(&"u".repeat(129), "locale", json!("RU")), Quarantine("invalid_fields", "`user_id` is 129 characters long, the limit is 128")),
        (login_with("u", "device_type", json!("d".repeat(33))), Quarantine("invalid_fields", "`device_type` is 33 characters long, the limit is 32")),
        (login_with("u", "locale", json!("é".repeat(33))), Quarantine("invalid_fields", "`locale` is 33 characters long, the limit is 32")),
        (login_with("u", "app_version", json!("1.".repeat(17))), Quarantine("invalid_fields", "`app_version` is 34 characters long, the limit is 32")),
        (login_with("u", "device_id", json!("8".repeat(257))), Quarantine("invalid_fields", "`device_id` is 257 bytes long, the limit is 128 bytes")),
        (max_body, Quarantine("invalid_fields", "bytes long, the limit is 128 bytes")),
        (login_with("a\u{0}b", "locale", json!("RU")), Quarantine("invalid_fields", "`user_id` contains a NUL character")),
        // Addresses that are not (unambiguously) addresses.
        (login_with("u", "ip", json!("198.51.100.256")), Quarantine("invalid_fields", "`ip` is not an IPv4 or IPv6 address")),
        (login_with("u", "ip", json!("198.51.100")), Quarantine("invalid_fields", "`ip` is not an IPv4 or IPv6 address")),
        (login_with("u", "ip", json!("198.051.100.009")), Quarantine("invalid_fields", "`ip` is not an IPv4 or IPv6 address")),
        (login_with("u", "ip", json!("198.51.100.10:443")), Quarantine("invalid_fields", "`ip` is not an IPv4 or IPv6 address")),
        (login_with("u", "ip", json!("[2001:db8::51]")), Quarantine("invalid_fields", "`ip` is not an IPv4 or IPv6 address")),
        (login_with("u", "ip", json!("fe80::5151%eth0")), Quarantine("invalid_fields", "`ip` is not an IPv4 or IPv6 address")),
        (login_with("u", "ip", json!("0xc6.51.100.11")), Quarantine("invalid_fields", "`ip` is not an IPv4 or IPv6 address")),
        (login_with("u", "ip", json!("198.51.100.12/32")), Quarantine("invalid_fields", "`ip` is not an IPv4 or IPv6 address")),
        (login_with("u", "ip", json!("hostile-localhost")), Quarantine("invalid_fields", "`ip` is not an IPv4 or IPv6 address")),
        (login_with("u", "ip", json!("")), Quarantine("invalid_fields", "`ip` is empty")),
        // Several problems at once: all of them reported.
        (
            json!({"user_id": 1, "device_type": null, "ip": "198.51.100.300", "device_id": "hostile-device-04", "locale": []}).to_string(),
            Quarantine("invalid_fields", "`user_id` must be a string, got a number; `device_type` is null; `locale` must be a string or null, got an array; `ip` is not an IPv4 or IPv6 address"),
        ),
        // Odd but valid: these are logins and must become rows.
        (login_with("'; DROP TABLE user_logins; --", "locale", json!("RU")), Row("'; DROP TABLE user_logins; --")),
        (login_with("u-\u{202e}rtl-👩‍💻-ユーザー", "locale", json!("RU")), Row("u-\u{202e}rtl-👩‍💻-ユーザー")),
        (login_with("u-bell-\u{7}", "locale", json!("RU")), Row("u-bell-\u{7}")),
        (login_with("u-extra", "extra", json!({"nested": [1, {"deep": null}]})), Row("u-extra")),
        (login_with("u-upper-key", "IP", json!("not an address, unknown key")), Row("u-upper-key")),
        (login_with("u-ipv6-long", "ip", json!("2001:0db8:0000:0000:0000:0000:0000:0051")), Row("u-ipv6-long")),
        (login_with("u-mapped", "ip", json!("::ffff:198.51.100.23")), Row("u-mapped")),
        (login_with("u-spaces", "ip", json!("  198.51.100.23 ")), Row("u-spaces")),
        (login_with("u-locale-32", "locale", json!("l".repeat(32))), Row("u-locale-32")),
        (login_with("u-device-128", "device_id", json!("é".repeat(64))), Row("u-device-128")),
        (login_with("u", "device_id", json!("é".repeat(65))), Quarantine("invalid_fields", "`device_id` is 130 bytes long, the limit is 128 bytes")),
        (login_with(&"é".repeat(128), "locale", json!("RU")), Row("éééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé")),
        (login_with("u-empty-version", "app_version", json!("")), Row("u-empty-version")),
        (login_with("u-html", "device_type", json!("<script>alert(1)</script>")), Row("u-html")),
        (
            "{\n  \"device_id\" : \"hostile-device-05\",\n  \"ip\" : \"198.51.100.24\",\n  \"user_id\" : \"u-pretty\",\n  \"device_type\" : \"ios\"\n}".into(),
            Row("u-pretty"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_corpus_lands_exactly_once_with_precise_reasons_and_no_raw_pii() {
    let corpus = corpus();
    assert!(corpus.len() >= 50, "{} cases", corpus.len());
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let bodies: Vec<String> = corpus.iter().map(|(b, _)| b.clone()).collect();
    let ids = queue.send(&bodies).await;

    let summary = drain(&queue, &db).await;
    assert_eq!(summary.received, corpus.len() as u64, "{summary}");
    let client = db.client().await;
    let quarantined: HashMap<String, (String, String)> = client
        .query(
            "SELECT message_id, reason_code, reason FROM quarantined_messages",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let ledger: HashMap<String, String> = client
        .query("SELECT message_id, outcome FROM processed_messages", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(ledger.len(), corpus.len(), "one ledger entry per message");

    let mut rows_expected = 0;
    for (i, ((body, expect), id)) in corpus.iter().zip(&ids).enumerate() {
        let shown = body.chars().take(60).collect::<String>();
        match expect {
            Row(user_id) => {
                rows_expected += 1;
                assert_eq!(ledger[id.as_str()], "row", "case {i}: {shown}");
                let n: i64 = client
                    .query_one(
                        "SELECT count(*) FROM user_logins WHERE user_id = $1",
                        &[user_id],
                    )
                    .await
                    .unwrap()
                    .get(0);
                assert_eq!(n, 1, "case {i}: exactly one row: {shown}");
            }
            Quarantine(code, reason) => {
                assert_eq!(ledger[id.as_str()], "quarantined", "case {i}: {shown}");
                let (got_code, got_reason) = &quarantined[id.as_str()];
                assert_eq!(got_code, code, "case {i}: {shown} ({got_reason})");
                assert!(
                    got_reason.contains(reason),
                    "case {i}: {shown}: got {got_reason:?}"
                );
            }
        }
    }
    assert_eq!(db.counts().await.rows, rows_expected);

    // Spelling variants of one address are stored under one mask.
    let expected = masker().mask(Field::Ip, "198.51.100.23");
    let variants: i64 = client
        .query_one(
            "SELECT count(*) FROM user_logins WHERE user_id IN ('u-mapped', 'u-spaces') AND masked_ip = $1",
            &[&expected],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(variants, 2);

    // No raw address or device id, valid or not, anywhere in the database.
    let dump = db.dump_all_tables().await;
    let raw: Vec<String> = [
        "198.51.100",
        "198.051.100",
        "2001:db8::51",
        "fe80::5151",
        "0xc6.51",
        "hostile-localhost",
        "hostile-device",
        "3325256807",
        "5934759",
        "2001:0db8",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_no_raw_pii(&dump, &raw, "the database");
    assert_eq!(queue.remaining().await, 0);
}
