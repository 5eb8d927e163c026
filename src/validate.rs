//! Decoding and validating one login (a body, or one element of it) into a typed [`LoginEvent`].
//!
//! Named for what it does: it was `event`, which beside `message` (the delivery, source-neutral)
//! read as another word for the same thing. A message holds one or more logins; this module
//! decides whether each one is a valid login.
//!
//! Validation happens *before* anything reaches PostgreSQL, so a single bad message can never fail a
//! whole batch: everything the table would reject (too long, NUL characters, wrong types) is caught
//! here and turned into a [`Rejection`] with a reason a human can act on.
//!
//! Reasons never contain input values: serde's own error messages quote offending values (which may be
//! a raw IP address), so every reason is built here from field names and fixed wording only.

use std::fmt;
use std::net::IpAddr;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// Column widths of `user_logins`; checked here so PostgreSQL never sees a value it would reject.
pub mod limits {
    /// `user_id varchar(128)`.
    pub const USER_ID: usize = 128;
    /// `device_type varchar(32)`.
    pub const DEVICE_TYPE: usize = 32;
    /// `locale varchar(32)`.
    pub const LOCALE: usize = 32;
    /// `app_version varchar(32)`.
    pub const APP_VERSION: usize = 32;
    /// Raw `device_id` is never stored, but an unbounded one is junk, not a device; 128 bytes also
    /// keeps an aes-siv mask of it within `varchar(256)`. Counted in bytes, unlike the others.
    pub const DEVICE_ID_BYTES: usize = 128;
    /// Longest textual IPv6 form with an embedded IPv4 tail, plus some slack for surrounding spaces.
    pub const IP: usize = 64;
}

/// A validated login event. `ip` is already canonical; `ip` and `device_id` are still raw here and
/// must go through [`crate::mask`] before leaving the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginEvent {
    /// Who logged in (opaque; the take-home uses UUIDs but nothing requires it).
    pub user_id: String,
    /// Free text such as `android` or `ios`.
    pub device_type: String,
    /// Parsed address; IPv4-mapped IPv6 forms are folded to IPv4 so equal addresses mask equally.
    pub ip: IpAddr,
    /// Trimmed device identifier.
    pub device_id: String,
    /// Optional locale such as `RU`.
    pub locale: Option<String>,
    /// Optional version text such as `2.3.0` or `0.96` (not a number, hence `varchar`).
    pub app_version: Option<String>,
    /// Names of top-level fields nobody asked for (at most [`MAX_UNKNOWN_FIELDS`]), for the
    /// metrics: producers add fields, and an operator should see which.
    pub unknown_fields: Vec<String>,
}

/// The top-level fields of a login; any other is unknown.
pub const FIELDS: [&str; 6] = [
    "user_id",
    "app_version",
    "device_type",
    "ip",
    "locale",
    "device_id",
];

/// Unknown field names kept per message.
pub const MAX_UNKNOWN_FIELDS: usize = 32;

/// Why a message cannot become a row. The `code` is stable (for counting and alerting); the
/// `message` explains it to a human and never quotes the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable machine-readable category, e.g. `invalid_json`, `missing_field`.
    pub code: RejectCode,
    /// Human-readable explanation naming the field(s) at fault.
    pub message: String,
}

/// Stable categories of [`Rejection`], stored in the quarantine table's `reason_code` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectCode {
    /// The body is not JSON at all (or is truncated).
    InvalidJson,
    /// Valid JSON, but not an object (array, string, number, ...).
    NotAnObject,
    /// The same known key appears twice, so which value counts would be a guess.
    DuplicateKey,
    /// One or more fields are missing, null, of the wrong type, empty, too long or malformed.
    InvalidFields,
    /// The message was delivered more times than allowed and is parked instead of retried.
    TooManyReceives,
    /// Valid by our rules, but PostgreSQL refused the row (e.g. a constraint added to the table).
    RejectedByDatabase,
    /// A JSON array or NDJSON body with more logins than `--max-logins-per-message`.
    TooManyLogins,
    /// An S3 object a notification named, or a line of it, that cannot be read: gone, replaced,
    /// refused, not gzip or UTF-8 where it says so, a line too long.
    UnreadableObject,
}

impl RejectCode {
    /// Every code, so each reason's counter is exported at 0 from the start.
    pub const ALL: [RejectCode; 8] = [
        RejectCode::InvalidJson,
        RejectCode::NotAnObject,
        RejectCode::DuplicateKey,
        RejectCode::InvalidFields,
        RejectCode::TooManyReceives,
        RejectCode::RejectedByDatabase,
        RejectCode::TooManyLogins,
        RejectCode::UnreadableObject,
    ];

    /// The text stored in the database and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::InvalidJson => "invalid_json",
            RejectCode::NotAnObject => "not_an_object",
            RejectCode::DuplicateKey => "duplicate_key",
            RejectCode::InvalidFields => "invalid_fields",
            RejectCode::TooManyReceives => "too_many_receives",
            RejectCode::RejectedByDatabase => "rejected_by_database",
            RejectCode::TooManyLogins => "too_many_logins",
            RejectCode::UnreadableObject => "unreadable_object",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl Rejection {
    /// A rejection with its reason.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The fields we know, captured as untyped JSON so that type errors can be reported by us (without
/// values) rather than by serde (which quotes them). Unknown keys are ignored: producers may add fields.
#[derive(Default)]
struct RawFields {
    user_id: Option<Value>,
    app_version: Option<Value>,
    device_type: Option<Value>,
    ip: Option<Value>,
    locale: Option<Value>,
    device_id: Option<Value>,
    unknown: Vec<String>,
}

/// Marker put into serde's custom error so a duplicate key can be told apart from other data errors.
const DUPLICATE_KEY_PREFIX: &str = "login-etl duplicate key: ";

impl<'de> Deserialize<'de> for RawFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = RawFields;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFields, A::Error> {
                let mut fields = RawFields::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "user_id" => &mut fields.user_id,
                        "app_version" => &mut fields.app_version,
                        "device_type" => &mut fields.device_type,
                        "ip" => &mut fields.ip,
                        "locale" => &mut fields.locale,
                        "device_id" => &mut fields.device_id,
                        _ => {
                            if fields.unknown.len() < MAX_UNKNOWN_FIELDS {
                                fields.unknown.push(key.to_string());
                            }
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    if slot.is_some() {
                        // `key` is one of our own field names above, never input text.
                        return Err(de::Error::custom(format!("{DUPLICATE_KEY_PREFIX}{key}")));
                    }
                    *slot = Some(map.next_value::<Value>()?);
                }
                Ok(fields)
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// Parse and validate one message body.
///
/// Every field problem is reported at once (joined by `; `), so a producer fixing its output sees
/// all of them in one quarantine entry.
pub fn decode(body: &str) -> Result<LoginEvent, Rejection> {
    let fields =
        serde_json::from_str::<RawFields>(body).map_err(|e| classify_json_error(body, &e))?;
    let mut problems = Vec::new();

    let user_id = required_text(&fields.user_id, "user_id", limits::USER_ID, &mut problems);
    let device_type = required_text(
        &fields.device_type,
        "device_type",
        limits::DEVICE_TYPE,
        &mut problems,
    );
    let ip_text = required_text(&fields.ip, "ip", limits::IP, &mut problems);
    // Only the byte limit below applies to `device_id`.
    let device_id = required_text(&fields.device_id, "device_id", usize::MAX, &mut problems)
        .filter(|id| {
            let bytes = id.trim().len();
            let fits = bytes <= limits::DEVICE_ID_BYTES;
            if !fits {
                problems.push(format!(
                    "`device_id` is {bytes} bytes long, the limit is {} bytes",
                    limits::DEVICE_ID_BYTES
                ));
            }
            fits
        });
    let locale = optional_text(&fields.locale, "locale", limits::LOCALE, &mut problems);
    let app_version = optional_text(
        &fields.app_version,
        "app_version",
        limits::APP_VERSION,
        &mut problems,
    );

    let ip = ip_text.and_then(|text| match canonical_ip(&text) {
        Some(ip) => Some(ip),
        None => {
            problems.push("`ip` is not an IPv4 or IPv6 address".to_string());
            None
        }
    });

    match (user_id, device_type, ip, device_id, locale, app_version) {
        (
            Some(user_id),
            Some(device_type),
            Some(ip),
            Some(device_id),
            Some(locale),
            Some(app_version),
        ) if problems.is_empty() => Ok(LoginEvent {
            user_id,
            device_type,
            ip,
            device_id: device_id.trim().to_string(),
            locale,
            app_version,
            unknown_fields: fields.unknown,
        }),
        _ => Err(Rejection::new(
            RejectCode::InvalidFields,
            problems.join("; "),
        )),
    }
}

/// Parse an address the way equal addresses should compare: surrounding whitespace ignored and
/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`) folded to plain IPv4. Zone ids and octal-looking forms are
/// rejected by the standard parser, which is what we want: they are ambiguous.
pub fn canonical_ip(text: &str) -> Option<IpAddr> {
    let ip: IpAddr = text.trim().parse().ok()?;
    Some(ip.to_canonical())
}

fn classify_json_error(body: &str, err: &serde_json::Error) -> Rejection {
    use serde_json::error::Category;
    match err.classify() {
        // Syntax messages are fixed texts from serde_json ("expected value", "EOF while parsing a
        // string", "recursion limit exceeded"), plus a position: safe to show.
        Category::Syntax | Category::Eof | Category::Io => {
            Rejection::new(RejectCode::InvalidJson, format!("not valid JSON: {err}"))
        }
        Category::Data => {
            let text = err.to_string();
            if let Some(rest) = text.strip_prefix(DUPLICATE_KEY_PREFIX) {
                let key = rest.split_whitespace().next().unwrap_or_default();
                Rejection::new(
                    RejectCode::DuplicateKey,
                    format!("key `{key}` appears more than once"),
                )
            } else {
                // serde's message would quote the value; describe the top-level kind instead.
                Rejection::new(
                    RejectCode::NotAnObject,
                    format!("expected a JSON object, got {}", top_level_kind(body)),
                )
            }
        }
    }
}

fn top_level_kind(body: &str) -> &'static str {
    match body.trim_start().chars().next() {
        Some('[') => "an array",
        Some('"') => "a string",
        Some('t') | Some('f') => "a boolean",
        Some('n') => "null",
        Some(c) if c == '-' || c.is_ascii_digit() => "a number",
        _ => "a non-object value",
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks shared by every text field; returns the problem, never the value.
fn text_problem(text: &str, name: &str, max_chars: usize) -> Option<String> {
    // PostgreSQL counts varchar length in characters, not bytes.
    let chars = text.chars().count();
    if chars > max_chars {
        return Some(format!(
            "`{name}` is {chars} characters long, the limit is {max_chars}"
        ));
    }
    if text.contains('\0') {
        return Some(format!("`{name}` contains a NUL character"));
    }
    None
}

fn required_text(
    value: &Option<Value>,
    name: &str,
    max_chars: usize,
    problems: &mut Vec<String>,
) -> Option<String> {
    match value {
        None => problems.push(format!("`{name}` is missing")),
        Some(Value::Null) => problems.push(format!("`{name}` is null")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            problems.push(format!("`{name}` is empty"))
        }
        Some(Value::String(s)) => match text_problem(s, name, max_chars) {
            Some(problem) => problems.push(problem),
            None => return Some(s.clone()),
        },
        Some(other) => problems.push(format!(
            "`{name}` must be a string, got {}",
            json_kind(other)
        )),
    }
    None
}

/// `Some(None)` is a valid absent value; `None` means the field was invalid.
fn optional_text(
    value: &Option<Value>,
    name: &str,
    max_chars: usize,
    problems: &mut Vec<String>,
) -> Option<Option<String>> {
    match value {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => match text_problem(s, name, max_chars) {
            Some(problem) => {
                problems.push(problem);
                None
            }
            None => Some(Some(s.clone())),
        },
        Some(other) => {
            problems.push(format!(
                "`{name}` must be a string or null, got {}",
                json_kind(other)
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reject_code_is_in_all() {
        // A new variant fails to compile here until it has the next index, then fails below
        // until it is in `ALL` (so its counter is exported at 0).
        let index = |code: RejectCode| match code {
            RejectCode::InvalidJson => 0,
            RejectCode::NotAnObject => 1,
            RejectCode::DuplicateKey => 2,
            RejectCode::InvalidFields => 3,
            RejectCode::TooManyReceives => 4,
            RejectCode::RejectedByDatabase => 5,
            RejectCode::TooManyLogins => 6,
            RejectCode::UnreadableObject => 7,
        };
        let mut listed: Vec<usize> = RejectCode::ALL.iter().map(|c| index(*c)).collect();
        listed.sort_unstable();
        assert_eq!(listed, (0..=7).collect::<Vec<_>>());
    }

    const GOOD: &str = r#"{"user_id": "424cdd21-063a-43a7-b91b-7ca1a833afae", "app_version": "2.3.0", "device_type": "android", "ip": "199.172.111.135", "locale": "RU", "device_id": "593-47-5928"}"#;

    fn reject(body: &str) -> Rejection {
        decode(body).expect_err("should be rejected")
    }

    #[test]
    fn decodes_the_take_home_shape() {
        let event = decode(GOOD).unwrap();
        assert_eq!(event.user_id, "424cdd21-063a-43a7-b91b-7ca1a833afae");
        assert_eq!(event.ip, "199.172.111.135".parse::<IpAddr>().unwrap());
        assert_eq!(event.locale.as_deref(), Some("RU"));
        assert_eq!(event.app_version.as_deref(), Some("2.3.0"));
    }

    #[test]
    fn null_or_missing_optional_fields_are_fine() {
        let event = decode(
            r#"{"user_id":"u","device_type":"ios","ip":"1.2.3.4","device_id":"d","locale":null}"#,
        )
        .unwrap();
        assert_eq!(event.locale, None);
        assert_eq!(event.app_version, None);
    }

    #[test]
    fn wrong_message_type_lists_every_missing_field() {
        let r = reject(r#"{"foo": "oops_wrong_msg_type", "bar": "123"}"#);
        assert_eq!(r.code, RejectCode::InvalidFields);
        for field in ["user_id", "device_type", "ip", "device_id"] {
            assert!(r.message.contains(&format!("`{field}` is missing")), "{r}");
        }
    }

    #[test]
    fn non_json_and_non_objects_are_told_apart() {
        assert_eq!(reject("not json").code, RejectCode::InvalidJson);
        assert_eq!(
            reject(r#"{"user_id": "u", "ip": "1.2"#).code,
            RejectCode::InvalidJson
        );
        assert_eq!(reject("").code, RejectCode::InvalidJson);
        let r = reject(r#"["1.2.3.4"]"#);
        assert_eq!(r.code, RejectCode::NotAnObject);
        assert_eq!(r.message, "expected a JSON object, got an array");
        assert_eq!(
            reject(r#""1.2.3.4""#).message,
            "expected a JSON object, got a string"
        );
        assert_eq!(reject("null").code, RejectCode::NotAnObject);
    }

    #[test]
    fn duplicate_known_keys_are_rejected_without_values() {
        let r = reject(
            r#"{"user_id":"u","device_type":"ios","ip":"1.2.3.4","ip":"5.6.7.8","device_id":"d"}"#,
        );
        assert_eq!(r.code, RejectCode::DuplicateKey);
        assert_eq!(r.message, "key `ip` appears more than once");
    }

    #[test]
    fn type_errors_never_quote_the_value() {
        let r = reject(
            r#"{"user_id":"u","device_type":"ios","ip":3232235777,"device_id":["593-47-5928"]}"#,
        );
        assert!(
            r.message.contains("`ip` must be a string, got a number"),
            "{r}"
        );
        assert!(
            r.message
                .contains("`device_id` must be a string, got an array"),
            "{r}"
        );
        assert!(!r.message.contains("3232235777") && !r.message.contains("593-47"));
    }

    #[test]
    fn invalid_ip_is_rejected_without_quoting_it() {
        for ip in [
            "999.1.1.1",
            "1.2.3",
            "01.2.3.4",
            "fe80::1%eth0",
            "localhost",
            "1.2.3.4/24",
        ] {
            let body =
                format!(r#"{{"user_id":"u","device_type":"ios","ip":"{ip}","device_id":"d"}}"#);
            let r = reject(&body);
            assert_eq!(r.message, "`ip` is not an IPv4 or IPv6 address", "{ip}");
        }
    }

    #[test]
    fn overlong_fields_are_rejected_by_character_count() {
        let ok = "é".repeat(limits::DEVICE_TYPE);
        let body =
            format!(r#"{{"user_id":"u","device_type":"{ok}","ip":"1.2.3.4","device_id":"d"}}"#);
        assert!(
            decode(&body).is_ok(),
            "32 two-byte characters fit varchar(32)"
        );
        let long = "x".repeat(limits::LOCALE + 1);
        let body = format!(
            r#"{{"user_id":"u","device_type":"ios","ip":"1.2.3.4","device_id":"d","locale":"{long}"}}"#
        );
        assert_eq!(
            reject(&body).message,
            "`locale` is 33 characters long, the limit is 32"
        );
    }

    #[test]
    fn nul_characters_and_blank_required_fields_are_rejected() {
        let r =
            reject(r#"{"user_id":"a\u0000b","device_type":" ","ip":"1.2.3.4","device_id":"d"}"#);
        assert!(
            r.message.contains("`user_id` contains a NUL character"),
            "{r}"
        );
        assert!(r.message.contains("`device_type` is empty"), "{r}");
    }

    #[test]
    fn numeric_app_version_is_a_type_error() {
        let r = reject(
            r#"{"user_id":"u","device_type":"ios","ip":"1.2.3.4","device_id":"d","app_version":3.7}"#,
        );
        assert_eq!(
            r.message,
            "`app_version` must be a string or null, got a number"
        );
    }

    #[test]
    fn equal_addresses_canonicalise_equally() {
        let plain = canonical_ip("1.2.3.4").unwrap();
        assert_eq!(canonical_ip("  1.2.3.4 ").unwrap(), plain);
        assert_eq!(canonical_ip("::ffff:1.2.3.4").unwrap(), plain);
        assert_eq!(canonical_ip("::FFFF:0102:0304").unwrap(), plain);
        assert_eq!(
            canonical_ip("2001:DB8:0:0::1").unwrap(),
            canonical_ip("2001:db8::1").unwrap()
        );
    }

    /// Bodies that are mostly JSON objects with login fields: values of every JSON type, the
    /// right ones often, then the text cut or spliced now and then. (Arbitrary text alone is
    /// almost never JSON and would test little past the parser's first byte.)
    fn login_like_body() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let value = prop_oneof![
            "[a-zA-Z0-9 .:_-]{0,40}".prop_map(serde_json::Value::from),
            any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string().into()),
            ".{0,140}".prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            Just(serde_json::json!({"nested": ["x", 1]})),
        ];
        let key = prop_oneof![
            proptest::sample::select(FIELDS.to_vec()).prop_map(String::from),
            "[a-z_]{1,10}",
        ];
        let object = proptest::collection::btree_map(key, value, 0..9)
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()).to_string());
        (object, 0usize..6, any::<usize>(), ".{0,3}").prop_map(|(text, mutation, at, splice)| {
            let cut = text
                .char_indices()
                .map(|(i, _)| i)
                .nth(at % text.chars().count().max(1));
            match (mutation, cut) {
                (0, Some(i)) => text[..i].to_string(),
                (1, Some(i)) => format!("{}{splice}{}", &text[..i], &text[i..]),
                _ => text,
            }
        })
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_a_decoded_login_fits_the_table(body in login_like_body()) {
            if let Ok(event) = decode(&body) {
                proptest::prop_assert!(!event.user_id.is_empty() && event.user_id.chars().count() <= limits::USER_ID);
                proptest::prop_assert!(event.device_type.chars().count() <= limits::DEVICE_TYPE);
                proptest::prop_assert!(event.device_id.len() <= limits::DEVICE_ID_BYTES);
                proptest::prop_assert!(!event.user_id.contains('\0') && !event.device_type.contains('\0'));
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(8))]
        #[test]
        fn the_generator_mostly_makes_json(bodies in proptest::collection::vec(login_like_body(), 64)) {
            let json = bodies.iter().filter(|b| serde_json::from_str::<serde_json::Value>(b).is_ok()).count();
            proptest::prop_assert!(json >= 24, "only {} of 64 bodies are JSON", json);
        }

        #[test]
        fn reasons_never_quote_pii(ip in "[ -~]{6,40}", device in "[ -~]{6,40}") {
            let body = serde_json::json!({
                "user_id": "u", "device_type": "ios", "ip": ip, "device_id": device, "locale": 7
            }).to_string();
            let rejection = decode(&body).expect_err("locale is a number");
            proptest::prop_assert!(!rejection.message.contains(&ip));
            proptest::prop_assert!(!rejection.message.contains(&device));
        }
    }
}
