//! The scrubber against the bodies that leaked before, and against generated ones that hide PII
//! wherever a producer might put it.

use super::*;
use crate::mask::KeyRing;
use proptest::prelude::*;

fn masker() -> Masker {
    Masker::hmac(&KeyRing::parse(&"11".repeat(32)).unwrap())
}

fn leaks<'a>(stored: &str, raw: &'a [String]) -> Vec<&'a String> {
    let lower = stored.to_lowercase();
    raw.iter()
        .filter(|r| stored.contains(r.as_str()) || lower.contains(&r.to_lowercase()))
        .collect()
}

/// The bodies of the privacy issue, and their raw values.
pub(crate) const CORPUS: &[(&str, &[&str])] = &[
    (
        r#"{"user_id":"u1","IP":"203.0.113.201","device_id":"dev-201-x"}"#,
        &["203.0.113.201", "dev-201-x"],
    ),
    (
        r#"{"user_id":"u2","ipAddress":"203.0.113.202","deviceId":"dev-202-x"}"#,
        &["203.0.113.202", "dev-202-x"],
    ),
    (
        r#"{"user_id":"u3","Device_ID":"dev-203-x"}"#,
        &["dev-203-x"],
    ),
    (
        r#"{"Type":"Notification","TopicArn":"arn:aws:sns:eu-west-1:123456789012:logins","MessageId":"m","Message":"{\"user_id\":\"u4\",\"ip\":\"203.0.113.204\",\"device_id\":\"dev-204-x\"}"}"#,
        &["203.0.113.204", "dev-204-x"],
    ),
    (
        r#"{"user_id":"u7","note":"login from 203.0.113.207 on dev-207"}"#,
        &["203.0.113.207", "dev-207"],
    ),
    (
        r#"{"user_id":"u\u00008","ip":"203.0.113.208","device_id":"dev\u0000-208"}"#,
        &["203.0.113.208", "-208"],
    ),
    (
        r#"{"user_id":"u9","seen":{"203.0.113.209":true,"dev-209-x":1}}"#,
        &["203.0.113.209", "dev-209-x"],
    ),
    (
        r#"{"user_id":"2001:db8:85a3::8a2e:370:7334","device_type":"203.0.113.210"}"#,
        &["2001:db8:85a3::8a2e:370:7334", "203.0.113.210"],
    ),
    (r#"{"ip": "203.0.113.211", "dev"#, &["203.0.113.211"]),
    (
        r#"login 203.0.113.212 dev-212-x"#,
        &["203.0.113.212", "dev-212-x"],
    ),
    (
        r#"{"user_id":"u13","device_id":"abcdef","device_type":"abcdef","abcdef":1}"#,
        &["abcdef"],
    ),
];

#[test]
fn the_corpus_keeps_no_raw_value_and_stays_jsonb_safe() {
    for (body, raw) in CORPUS {
        let raw: Vec<String> = raw.iter().map(|s| s.to_string()).collect();
        let stored = masker().scrub_body(body);
        let all = format!("{} {:?}", stored.json, stored.user_id);
        assert!(leaks(&all, &raw).is_empty(), "{body} -> {all}");
        assert!(!stored.json.contains("\\u0000"), "{}", stored.json);
        assert!(!stored.json.chars().any(char::is_control));
        serde_json::from_str::<Value>(&stored.json).unwrap();
    }
}

#[test]
fn diagnosis_keeps_names_types_and_known_fields() {
    let stored = masker().scrub_body(
        r#"{"user_id":"u1","IP":"203.0.113.201","device_type":"ios","app_version":0.96,"locale":null,"retries":3,"ok":true,"note":"hello"}"#,
    );
    let v: Value = serde_json::from_str(&stored.json).unwrap();
    assert_eq!(v["user_id"], "u1");
    assert_eq!(v["device_type"], "ios");
    assert_eq!(v["app_version"], 0.96);
    assert_eq!(v["locale"], Value::Null);
    assert_eq!(v["ok"], true);
    // The IP under `IP` is masked as a row's `ip` would be, so it matches the rows' masks.
    let ip = "203.0.113.201".parse().unwrap();
    assert_eq!(v["IP"], masker().mask_ip(&ip));
    assert!(v["retries"].as_str().unwrap().starts_with("#num(1) k1:"));
    assert!(v["note"].as_str().unwrap().starts_with("#str(5) k1:"));
    assert_eq!(stored.user_id.as_deref(), Some("u1"));
}

#[test]
fn sns_messages_are_decoded_and_scrubbed_inside() {
    let stored = masker().scrub_body(CORPUS[3].0);
    let v: Value = serde_json::from_str(&stored.json).unwrap();
    assert_eq!(v["Type"], "Notification");
    assert_eq!(v["Message"]["#json"]["user_id"], "u4");
    assert_eq!(stored.user_id.as_deref(), Some("u4"));
}

#[test]
fn non_json_keeps_length_fingerprint_and_where_it_failed() {
    let stored = masker().scrub_body(CORPUS[8].0);
    let v: Value = serde_json::from_str(&stored.json).unwrap();
    assert_eq!(v["#not_json"]["bytes"], CORPUS[8].0.len());
    assert!(v["#not_json"]["error"].as_str().unwrap().contains("line 1"));
    assert!(v["#not_json"]["fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("k1:"));
}

#[test]
fn a_user_id_the_body_does_not_keep_is_stored_as_its_fingerprint() {
    for (body, user) in [
        (CORPUS[5].0, "u\u{0}8"),
        (CORPUS[7].0, "2001:db8:85a3::8a2e:370:7334"),
    ] {
        let stored = masker().scrub_body(body).user_id.unwrap();
        let fp = masker().fingerprint("user", user.as_bytes()).unwrap();
        assert_eq!(stored, format!("{USER_FINGERPRINT}{fp}"));
    }
}

#[test]
fn ip_shapes_are_found_inside_text() {
    for text in [
        "at 10.0.0.1:443",
        "v1.2.3.4",
        "x[2001:db8::1]y",
        "1:2:3:4:5:6:7:8",
        "fe80::1%eth0",
    ] {
        assert!(contains_ip(text), "{text}");
    }
    for text in [
        "2.3.0",
        "0.96",
        "12:34:56",
        "2024-01-01T12:34:56Z",
        "ios",
        "RU",
    ] {
        assert!(!contains_ip(text), "{text}");
    }
}

/// Where a generated secret goes.
#[derive(Debug, Clone)]
enum Spot {
    Value(String),
    FreeText(String),
    MapKey,
    Kept(&'static str),
    Number,
}

fn pii_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "ip",
            "IP",
            "Ip",
            "ipAddress",
            "IP_ADDRESS",
            "client_ip",
            "sourceIp",
            "remote_addr",
            "device_id",
            "Device_ID",
            "deviceId",
            "DEVICEID",
            "udid",
            "note",
            "x",
            "data",
        ])
        .prop_map(String::from),
        "[a-zA-Z_]{1,10}",
    ]
}

fn spot() -> impl Strategy<Value = Spot> {
    prop_oneof![
        pii_key().prop_map(Spot::Value),
        "[a-z ]{0,8}".prop_map(Spot::FreeText),
        Just(Spot::MapKey),
        prop::sample::select(vec![
            "user_id",
            "device_type",
            "locale",
            "app_version",
            "create_date"
        ])
        .prop_map(Spot::Kept),
        Just(Spot::Number),
    ]
}

fn secret() -> impl Strategy<Value = (String, Option<u64>)> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| {
            let ip = std::net::Ipv4Addr::from(o);
            (ip.to_string(), Some(u64::from(u32::from(ip))))
        }),
        any::<[u16; 8]>()
            .prop_filter("not tiny", |s| s.iter().filter(|g| **g != 0).count() >= 3)
            .prop_map(|s| (std::net::Ipv6Addr::from(s).to_string(), None)),
        "[g-z]{2}[0-9]{3}-[A-Z0-9]{4}".prop_map(|d| (d, None)),
        "[0-9]{3}-[0-9]{2}-[0-9]{4}".prop_map(|d| (d, None)),
    ]
}

/// Put `secret` at `spot` inside an object, `depth` levels down, maybe inside an array.
fn place(secret: &str, number: Option<u64>, spot: &Spot, depth: usize, in_array: bool) -> Value {
    let mut leaf = Map::new();
    match spot {
        Spot::Value(key) => {
            leaf.insert(key.clone(), secret.into());
        }
        Spot::FreeText(prefix) => {
            leaf.insert("note".into(), format!("{prefix} {secret}\u{0} seen").into());
        }
        Spot::MapKey => {
            leaf.insert(secret.into(), true.into());
        }
        Spot::Kept(name) => {
            // A value in a kept field is only PII if the message says so somewhere.
            leaf.insert((*name).into(), secret.into());
            leaf.insert("device_id".into(), secret.into());
        }
        Spot::Number => {
            leaf.insert("ip".into(), number.map_or(secret.into(), Value::from));
        }
    }
    let mut value = Value::Object(leaf);
    if in_array {
        value = Value::Array(vec![Value::Null, value]);
    }
    for i in 0..depth {
        value = Value::Object(Map::from_iter([(format!("level{i}"), value)]));
    }
    value
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_generated_secret_survives_scrubbing(
        secrets in prop::collection::vec((secret(), spot(), 0usize..5, any::<bool>()), 1..5),
        wrap in 0u8..4,
        user in "[a-z0-9\\x00\\x1b-]{0,12}",
    ) {
        let mut top = Map::new();
        top.insert("user_id".into(), user.into());
        let mut raw = Vec::new();
        for (i, ((text, number), spot, depth, in_array)) in secrets.iter().enumerate() {
            top.insert(format!("f{i}"), place(text, *number, spot, *depth, *in_array));
            raw.push(text.clone());
        }
        let body = Value::Object(top).to_string();
        let body = match wrap {
            // An SNS notification: the login as JSON text in `Message`.
            0 => serde_json::json!({"Type": "Notification", "Message": body}).to_string(),
            // Not JSON any more.
            1 => body[..body.len() - 1].to_string(),
            _ => body,
        };
        let stored = masker().scrub_body(&body);
        let leaked = leaks(&format!("{} {:?}", stored.json, stored.user_id), &raw);
        prop_assert!(leaked.is_empty(), "{:?} leaked from {} into {}", leaked, body, stored.json);
        prop_assert!(!stored.json.contains("\\u0000"));
    }
}

#[test]
fn extra_fields_are_the_unknown_fields_scrubbed_like_a_quarantine_body() {
    let masker = masker();
    let login = r#"{"user_id":"u","device_type":"ios","ip":"10.1.2.3","device_id":"abc-123","campaign":"spring","copy_of_device":"abc-123","flag":true,"10.9.9.9":1}"#;
    let extra = masker.extra_fields(login).unwrap();
    let object = extra.as_object().unwrap();
    assert_eq!(object.len(), 4, "{extra}");
    assert!(!object.contains_key("user_id") && !object.contains_key("ip"));
    assert_eq!(object["flag"], Value::Bool(true));
    let text = extra.to_string();
    for raw in ["spring", "abc-123", "10.9.9.9", "10.1.2.3"] {
        assert!(!text.contains(raw), "{raw} in {text}");
    }
    let known_only = r#"{"user_id":"u","device_type":"ios","ip":"10.1.2.3","device_id":"d"}"#;
    assert_eq!(masker.extra_fields(known_only), None);
}

#[test]
fn a_huge_body_is_kept_in_shape_only_up_to_the_value_budget() {
    let masker = masker();
    let body = format!("[{}]", vec!["1"; 500_000].join(","));
    let scrubbed = masker.scrub_body(&body).json;
    assert!(scrubbed.len() < 100_000, "{} bytes", scrubbed.len());
    assert!(
        scrubbed.ends_with(r##""#more(498001)"]"##),
        "{}",
        &scrubbed[scrubbed.len() - 40..]
    );
    let object: String = (0..5000)
        .map(|i| format!(r#""k{i}":"10.0.{}.{}","#, i / 256, i % 256))
        .collect();
    let scrubbed = masker.scrub_body(&format!("{{{}\"z\":1}}", object)).json;
    assert!(
        scrubbed.contains(r##""#more":"##),
        "the rest of the object is counted"
    );
    assert!(
        !scrubbed.contains("10.0."),
        "no raw value, truncated or not"
    );
}

#[test]
fn one_huge_pii_value_is_looked_for_in_linear_time() {
    let started = std::time::Instant::now();
    let body = format!(r#"{{"device_id":"{}","note":"x"}}"#, "9".repeat(200_000));
    let scrubbed = masker().scrub_body(&body).json;
    assert!(!scrubbed.contains("99999"));
    // Minutes with a DFA; well under a second (even unoptimised) with the NFA.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
