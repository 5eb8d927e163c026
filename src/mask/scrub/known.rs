//! What of a message is PII, found before it is scrubbed: the values under PII-like names and
//! every IP address ([`collect_known`], looked up through [`KnownValues`]), JSON inside strings,
//! and the user id erasure needs ([`find_user_id`]).

use serde_json::Value;

use super::{pii_kind, PiiKind, MAX_DEPTH, MAX_JSON_IN_STRING, MIN_CONTAINED};

/// A string that holds a JSON object or array, decoded.
pub(super) fn json_in_string(text: &str) -> Option<Value> {
    let t = text.trim_start();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
}

/// Gather the PII values of a message, lower-cased: strings and numbers under PII-like names (at
/// any depth below them) and every string that parses as an IP address.
pub(super) fn collect_known(
    value: &Value,
    kind: Option<PiiKind>,
    depth: usize,
    json_depth: usize,
    out: &mut Vec<String>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::String(s) => {
            if let Some(inner) = (json_depth < MAX_JSON_IN_STRING)
                .then(|| json_in_string(s))
                .flatten()
            {
                collect_known(&inner, kind, depth + 1, json_depth + 1, out);
            } else if kind.is_some() || crate::validate::canonical_ip(s).is_some() {
                out.push(s.trim().to_lowercase());
                if let Some(ip) = crate::validate::canonical_ip(s) {
                    out.push(ip.to_string());
                }
            }
        }
        Value::Number(n) if kind.is_some() => out.push(n.to_string()),
        Value::Array(items) => items
            .iter()
            .for_each(|v| collect_known(v, kind, depth + 1, json_depth, out)),
        Value::Object(map) => {
            for (k, v) in map {
                collect_known(v, kind.or(pii_kind(k)), depth + 1, json_depth, out);
            }
        }
        _ => {}
    }
}

/// The PII values of a message, ready to be looked for: whole values in a set, and the values
/// long enough to be looked for inside text in one automaton (a body of 1,000 logins has 2,000
/// of them; checking each string against each was quadratic).
pub(super) struct KnownValues {
    pub(super) exact: std::collections::HashSet<String>,
    pub(super) contained: Option<aho_corasick::AhoCorasick>,
}

impl KnownValues {
    pub(super) fn new(values: Vec<String>) -> Self {
        let long: Vec<&String> = (values.iter())
            .filter(|v| v.chars().count() >= MIN_CONTAINED)
            .collect();
        // Building fails only past the automaton's size limits; then each value is looked for
        // whole only, and long values still never appear whole.
        // A contiguous NFA builds in time linear in the values' length (the default may build a
        // DFA, which for one 200,000-character value takes minutes).
        let contained = (!long.is_empty())
            .then(|| {
                aho_corasick::AhoCorasick::builder()
                    .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
                    .build(long)
                    .ok()
            })
            .flatten();
        let exact = values.into_iter().filter(|v| !v.is_empty()).collect();
        Self { exact, contained }
    }
}

/// Whether a field name names a user id however a producer spells it (`user_id`, `userId`,
/// `UserID`, `user-id`, …): erasure must find a login whatever its producer called the field.
pub(crate) fn is_user_id_name(name: &str) -> bool {
    name.len() <= 16
        && name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .eq("userid".chars())
}

/// The value of an object's user id field: `user_id` if it has one, else the first field whose
/// name [`is_user_id_name`].
pub(crate) fn user_id_field(map: &serde_json::Map<String, Value>) -> Option<&Value> {
    (map.get("user_id")).or_else(|| {
        (map.iter())
            .find(|(name, _)| is_user_id_name(name))
            .map(|(_, v)| v)
    })
}

/// The first string user id ([`user_id_field`]), breadth first: the top level, then objects
/// inside, then inside JSON strings (as in an SNS `Message`).
pub(super) fn find_user_id(value: &Value, json_depth: usize) -> Option<String> {
    let mut in_strings = Vec::new();
    let mut queue = std::collections::VecDeque::from([(value, 0usize)]);
    while let Some((v, depth)) = queue.pop_front() {
        if depth > MAX_DEPTH {
            continue;
        }
        match v {
            Value::Object(map) => {
                if let Some(Value::String(id)) = user_id_field(map) {
                    return Some(id.clone());
                }
                queue.extend(map.values().map(|v| (v, depth + 1)));
            }
            Value::Array(items) => queue.extend(items.iter().map(|v| (v, depth + 1))),
            Value::String(s) if json_depth < MAX_JSON_IN_STRING => {
                in_strings.extend(json_in_string(s));
            }
            _ => {}
        }
    }
    (in_strings.iter()).find_map(|inner| find_user_id(inner, json_depth + 1))
}
