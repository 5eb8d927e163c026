//! What `erase` needs of the masking side: every form a user id takes in stored data, and a
//! scrubbed quarantine body with one subject's logins taken out.
//!
//! A message of several logins quarantined whole (an array over the cap, a poison message, a body
//! refused whole) holds several users' logins in one entry. Erasing one of them takes out only
//! that user's logins: each object whose own `user_id` is the subject's becomes `"#erased"` in
//! place (so element positions, and the entry's reason text, still match), and the other users'
//! logins stay byte for byte. A body that is the subject's as a whole, or that cannot be read,
//! goes whole.

use serde_json::Value;

use super::hmac::Fingerprinter;
use super::scrub::USER_FINGERPRINT;
use super::KeyRing;

/// What stands in a body for a login taken out by `erase`.
pub const ERASED: &str = "#erased";

/// Every form `user_id` takes in stored data, under every key of the ring: as it is; the
/// `user_id` column's `#user <fingerprint>` (an id that looked like PII); a scrubbed body's
/// `#str(<chars>) <fingerprint>` and `#num(<chars>) <fingerprint>`.
pub fn user_id_forms(keys: &KeyRing, user_id: &str) -> Vec<String> {
    let chars = user_id.chars().count();
    let mut forms = vec![user_id.to_string()];
    for (id, key) in keys.all() {
        let fingerprints = Fingerprinter::with_key(id, key);
        let user = fingerprints.fingerprint("user", user_id.as_bytes());
        let value = fingerprints.fingerprint("value", user_id.as_bytes());
        forms.push(format!("{USER_FINGERPRINT}{user}"));
        forms.push(format!("#str({chars}) {value}"));
        forms.push(format!("#num({chars}) {value}"));
    }
    forms
}

/// A quarantine body after one subject's erasure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stripped {
    /// Delete the entry: the body is the subject's as a whole, or unreadable.
    Whole,
    /// Keep the entry with this body (the subject's logins replaced by [`ERASED`]).
    Kept(String),
}

/// `body` (a scrubbed quarantine body) without the logins whose `user_id` is one of `forms`.
pub fn strip_subject(body: &str, forms: &[String]) -> Stripped {
    let Ok(mut value) = serde_json::from_str::<Value>(body) else {
        return Stripped::Whole;
    };
    if is_subjects(&value, forms) {
        return Stripped::Whole;
    }
    strip(&mut value, forms);
    Stripped::Kept(value.to_string())
}

/// Whether `value` is an object whose own `user_id` is one of `forms`.
fn is_subjects(value: &Value, forms: &[String]) -> bool {
    let stored = match value.get("user_id") {
        Some(Value::String(id)) => id.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return false,
    };
    forms.contains(&stored)
}

/// Replace the subject's objects under `value` by [`ERASED`], at any depth.
fn strip(value: &mut Value, forms: &[String]) {
    let children: Vec<&mut Value> = match value {
        Value::Array(items) => items.iter_mut().collect(),
        Value::Object(map) => map.values_mut().collect(),
        _ => return,
    };
    for child in children {
        if is_subjects(child, forms) {
            *child = Value::String(ERASED.into());
        } else {
            strip(child, forms);
        }
    }
}

#[cfg(test)]
mod tests;
