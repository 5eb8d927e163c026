//! Quarantine bodies that are safe by construction, whatever a message looks like.
//!
//! A rejected message is kept for diagnosis, but its PII may sit anywhere: under `IP`,
//! `ipAddress` or `Device_ID`, inside an SNS `Message` string, in free text, as a map key. So the
//! rule is an allow-list, not a deny-list:
//!
//! - the JSON shape and the field names are kept; a name that could itself be a value (it has a
//!   digit, a character outside `A-Za-z _ - . $ @`, is over 64 characters, equals a PII value of
//!   the message, or sits under a PII-like name) becomes `#key k1:<fingerprint>`;
//! - `null` and booleans are kept; strings and numbers are kept only under a few known non-PII
//!   names ([`KEPT`]), when short, free of control characters, holding nothing shaped like an IP
//!   address and none of the message's PII values;
//! - any string that parses as an IP address becomes its row mask (`ip` domain, canonical form),
//!   any value under a device-like name its `device_id` mask, so quarantined PII still matches rows;
//! - every other string or number becomes `#str(<chars>) k1:<fingerprint>` / `#num(<chars>) …`:
//!   type and length for diagnosis, a keyed fingerprint for telling values apart, no content;
//! - a string holding a JSON object or array (an SNS `Message`) is decoded and scrubbed by the same
//!   rules, two levels deep, as `{"#json": …}`;
//! - a body that is not JSON keeps only `{"#not_json": {bytes, fingerprint, error}}`;
//! - at most [`MAX_VALUES`] values are kept in shape; the rest of an array is `"#more(<n>)"`,
//!   the rest of an object `"#more": <n>`, so a quarantined 1 MiB array stays tens of KiB.
//!
//! The output never holds a control character or `\u0000`, so PostgreSQL can always cast it to
//! `jsonb`. The user id erasure needs is returned beside it, under the same rule: as it is if
//! the body keeps it, else as a keyed fingerprint.

use serde_json::{Map, Value};

use super::{Field, Masker};
pub(crate) use known::user_id_field;
use known::{collect_known, find_user_id, json_in_string, KnownValues};

mod known;
use crate::safe_text;

/// Names whose short scalar values are kept as they are, with their length limit in characters.
const KEPT: &[(&str, usize)] = &[
    ("user_id", 128),
    ("device_type", 32),
    ("locale", 32),
    ("app_version", 32),
    ("create_date", 32),
    // Envelope kinds (SNS, EventBridge), useful to see what was sent.
    ("Type", 32),
    ("detail-type", 64),
    ("source", 64),
];
/// Prefix of a user id stored as its fingerprint (one that looks like PII or holds control
/// characters).
pub const USER_FINGERPRINT: &str = "#user ";
/// Deeper than this, a subtree is replaced by `#truncated`.
const MAX_DEPTH: usize = 32;
/// JSON inside strings inside JSON: decoded this many levels.
const MAX_JSON_IN_STRING: usize = 2;
/// Longest kept numeric text (an IPv4 address as an integer has up to 10 digits).
const MAX_KEPT_NUMBER: usize = 6;
/// Values (scalars and containers) scrubbed per body; the rest is counted, not kept.
const MAX_VALUES: usize = 2_000;
/// Longest field name kept.
const MAX_KEY: usize = 64;
/// Known PII values shorter than this only match whole values, longer ones also inside text.
const MIN_CONTAINED: usize = 6;

/// A quarantine body ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubbedBody {
    /// JSON text without raw PII, control characters or `\u0000`.
    pub json: String,
    /// The message's `user_id` (top level, else the first one inside), for erasure: as it is
    /// when the body keeps it, else [`USER_FINGERPRINT`] and its keyed fingerprint (what
    /// `erase` looks for too). `None` if absent or not a string.
    pub user_id: Option<String>,
    /// Every `user_id` value the stored body holds, at any depth, as it is stored (the id, or its
    /// `#str(n) k1:<fingerprint>`), and `user_id`: what erasure looks entries up by. At most one
    /// per kept value ([`MAX_VALUES`]).
    pub user_ids: Vec<String>,
}

/// What kind of PII a field name suggests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PiiKind {
    Ip,
    Device,
}

/// Which PII a field name suggests, from its letters only (`IP`, `ipAddress`, `client_ip`,
/// `Device_ID`, `deviceId`, `udid`, …).
fn pii_kind(name: &str) -> Option<PiiKind> {
    let n: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    const DEVICE: &[&str] = &[
        "device", "udid", "imei", "idfa", "idfv", "gaid", "serial", "hardware", "mac",
    ];
    const IP: &[&str] = &["addr", "host", "remote", "origin", "forwarded"];
    if DEVICE.iter().any(|d| n.contains(d)) && n != "devicetype" {
        Some(PiiKind::Device)
    } else if n.starts_with("ip") || n.ends_with("ip") || IP.iter().any(|d| n.contains(d)) {
        Some(PiiKind::Ip)
    } else {
        None
    }
}

/// Whether `text` holds something shaped like an IP address: a dotted quad anywhere (also inside
/// longer dotted runs or after letters), or a token of hex digits and colons that parses as IPv6
/// or has three colons or more.
pub fn contains_ip(text: &str) -> bool {
    let dotted_runs = text.split(|c: char| !(c.is_ascii_digit() || c == '.'));
    for run in dotted_runs {
        let parts: Vec<&str> = run.split('.').collect();
        let octet =
            |p: &&str| (1..=3).contains(&p.len()) && p.parse::<u16>().is_ok_and(|n| n < 256);
        if parts.windows(4).any(|w| w.iter().all(octet)) {
            return true;
        }
    }
    let v6_tokens = text.split(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '.'));
    v6_tokens.filter(|t| t.matches(':').count() >= 2).any(|t| {
        let t = t.trim_matches('.');
        t.matches(':').count() >= 3
            || t.parse::<std::net::Ipv6Addr>().is_ok()
            || t.trim_end_matches(':')
                .parse::<std::net::Ipv6Addr>()
                .is_ok()
    })
}

/// Whether a field name can be shown as it is: 1 to 64 ASCII letters and `_ - . $ @`, no digit
/// (addresses and most device ids have digits). Used for quarantine bodies and metric labels.
pub fn is_plain_name(name: &str) -> bool {
    (1..=MAX_KEY).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b"_-.$@".contains(&b))
}

struct Scrubber<'a> {
    masker: &'a Masker,
    /// Lower-cased PII values of this message (values under PII-like names, IP addresses).
    known: KnownValues,
    /// Values that may still be scrubbed ([`MAX_VALUES`]).
    left: std::cell::Cell<usize>,
    /// The `user_id` values written so far, as written.
    user_ids: std::cell::RefCell<Vec<String>>,
}

impl Masker {
    /// The body of a rejected message as it may be stored: see the module docs.
    pub fn scrub_body(&self, body: &str) -> ScrubbedBody {
        match serde_json::from_str::<Value>(body) {
            Ok(value) => {
                let mut found = Vec::new();
                collect_known(&value, None, 0, 0, &mut found);
                let known = KnownValues::new(found);
                let scrubber = Scrubber {
                    masker: self,
                    known,
                    left: std::cell::Cell::new(MAX_VALUES),
                    user_ids: Default::default(),
                };
                let user_id = find_user_id(&value, 0).and_then(|id| {
                    if scrubber.kept(Some("user_id"), &id, false) {
                        Some(id)
                    } else {
                        self.fingerprint("user", id.as_bytes())
                            .map(|fp| format!("{USER_FINGERPRINT}{fp}"))
                    }
                });
                let scrubbed = scrubber.value(value, None, None, 0, 0);
                let mut user_ids = scrubber.user_ids.into_inner();
                user_ids.extend(user_id.clone());
                user_ids.sort();
                user_ids.dedup();
                ScrubbedBody {
                    json: scrubbed.to_string(),
                    user_id,
                    user_ids,
                }
            }
            Err(e) => {
                let category = match e.classify() {
                    serde_json::error::Category::Eof => "truncated",
                    serde_json::error::Category::Syntax => "syntax error",
                    _ => "not decodable",
                };
                let mut inner = Map::new();
                inner.insert("bytes".into(), body.len().into());
                if let Some(fp) = self.fingerprint("body", body.as_bytes()) {
                    inner.insert("fingerprint".into(), fp.into());
                }
                inner.insert(
                    "error".into(),
                    format!("{category} at line {} column {}", e.line(), e.column()).into(),
                );
                let mut outer = Map::new();
                outer.insert("#not_json".into(), Value::Object(inner));
                ScrubbedBody {
                    json: Value::Object(outer).to_string(),
                    user_id: None,
                    user_ids: Vec::new(),
                }
            }
        }
    }
}

impl Masker {
    /// The unknown top-level fields of a valid login, scrubbed by the same rules as a quarantine
    /// body (the whole login is scrubbed, so its own `ip` and `device_id` values are known PII
    /// wherever they recur), as an object; `None` if there are none.
    pub fn extra_fields(&self, login: &str) -> Option<Value> {
        let Ok(Value::Object(scrubbed)) = serde_json::from_str(&self.scrub_body(login).json) else {
            return None;
        };
        let extra: Map<String, Value> = scrubbed
            .into_iter()
            .filter(|(name, _)| !crate::validate::FIELDS.contains(&name.as_str()))
            .collect();
        (!extra.is_empty()).then_some(Value::Object(extra))
    }
}

impl Scrubber<'_> {
    /// Whether `text` is, or (if long enough) contains, a PII value of this message.
    fn is_known(&self, text: &str) -> bool {
        let lower = text.to_lowercase();
        self.known.exact.contains(lower.trim())
            || (self.known.contained.as_ref()).is_some_and(|values| values.is_match(&lower))
    }

    fn key(&self, name: &str, in_pii: bool) -> String {
        if !in_pii && is_plain_name(name) && !self.is_known(name) {
            return name.to_string();
        }
        format!("#key {}", self.fingerprint("key", name))
    }

    fn fingerprint(&self, purpose: &str, text: &str) -> String {
        self.masker
            .fingerprint(purpose, text.as_bytes())
            .unwrap_or_else(|| "unkeyed".into())
    }

    fn opaque(&self, kind: &str, text: &str) -> Value {
        let chars = text.chars().count();
        let fp = self.masker.fingerprint("value", text.as_bytes());
        match fp {
            Some(fp) => format!("#{kind}({chars}) {fp}").into(),
            None => format!("#{kind}({chars})").into(),
        }
    }

    fn kept(&self, name: Option<&str>, text: &str, is_number: bool) -> bool {
        let Some(limit) = name.and_then(|n| KEPT.iter().find(|(k, _)| *k == n).map(|(_, l)| *l))
        else {
            return false;
        };
        let limit = if is_number { MAX_KEPT_NUMBER } else { limit };
        text.chars().count() <= limit
            && !text.chars().any(safe_text::is_unsafe)
            && !contains_ip(text)
            && !self.is_known(text)
    }

    fn value(
        &self,
        value: Value,
        name: Option<&str>,
        pii: Option<PiiKind>,
        depth: usize,
        json_depth: usize,
    ) -> Value {
        let scrubbed = self.scrub(value, name, pii, depth, json_depth);
        if pii.is_none() && name.is_some_and(known::is_user_id_name) {
            let stored = match &scrubbed {
                Value::String(s) if s != "#truncated" => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            self.user_ids.borrow_mut().extend(stored);
        }
        scrubbed
    }

    fn scrub(
        &self,
        value: Value,
        name: Option<&str>,
        pii: Option<PiiKind>,
        depth: usize,
        json_depth: usize,
    ) -> Value {
        if depth > MAX_DEPTH || self.left.get() == 0 {
            return "#truncated".into();
        }
        self.left.set(self.left.get() - 1);
        match value {
            Value::Null | Value::Bool(_) => value,
            Value::Number(n) => {
                let text = n.to_string();
                match pii {
                    Some(PiiKind::Device) => self.masker.mask(Field::DeviceId, &text).into(),
                    Some(PiiKind::Ip) => self.masker.mask(Field::Ip, &text).into(),
                    None if self.kept(name, &text, true) => Value::Number(n),
                    None => self.opaque("num", &text),
                }
            }
            Value::String(s) => {
                // A user id shaped like an address is fingerprinted below, not masked as one:
                // erasure must recompute whatever a user id became.
                let user_id = name.is_some_and(known::is_user_id_name) && pii.is_none();
                if let Some(ip) = crate::validate::canonical_ip(&s).filter(|_| !user_id) {
                    return self.masker.mask_ip(&ip).into();
                }
                match pii {
                    Some(PiiKind::Device) => {
                        return self.masker.mask(Field::DeviceId, s.trim()).into()
                    }
                    Some(PiiKind::Ip) => return self.masker.mask(Field::Ip, s.trim()).into(),
                    None => {}
                }
                if json_depth < MAX_JSON_IN_STRING {
                    if let Some(inner) = json_in_string(&s) {
                        let inner = self.value(inner, None, None, depth + 1, json_depth + 1);
                        return Value::Object(Map::from_iter([("#json".to_string(), inner)]));
                    }
                }
                if self.kept(name, &s, false) {
                    Value::String(s)
                } else {
                    self.opaque("str", &s)
                }
            }
            Value::Array(items) => {
                let total = items.len();
                let mut out: Vec<Value> = (items.into_iter())
                    .take_while(|_| self.left.get() > 0)
                    .map(|v| self.value(v, None, pii, depth + 1, json_depth))
                    .collect();
                if out.len() < total {
                    out.push(format!("#more({})", total - out.len()).into());
                }
                Value::Array(out)
            }
            Value::Object(map) => {
                let mut out = Map::new();
                let total = map.len();
                for (done, (k, v)) in map.into_iter().enumerate() {
                    if self.left.get() == 0 {
                        out.insert("#more".into(), (total - done).into());
                        break;
                    }
                    let child_pii = pii.or(pii_kind(&k));
                    let mut key = self.key(&k, pii.is_some());
                    while out.contains_key(&key) {
                        key.push('~');
                    }
                    // Only a name kept as it is can make its value a kept one.
                    let kept_name = (key == k).then_some(k.as_str());
                    let scrubbed = self.value(v, kept_name, child_pii, depth + 1, json_depth);
                    out.insert(key, scrubbed);
                }
                Value::Object(out)
            }
        }
    }
}

#[cfg(test)]
mod tests;
