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

/// What an erasure records of its subject, and what the writer looks each login's user up by
/// (`erased_subjects`, migration 0014): the subject's `user` and `value` fingerprints under every
/// key of the ring, never the id. A record stays effective while any key it was made under is in
/// the writer's ring.
#[derive(Debug, Clone)]
pub struct ErasureFingerprints {
    keys: Vec<Fingerprinter>,
}

impl ErasureFingerprints {
    /// Fingerprints under every key of `keys`.
    pub fn new(keys: &KeyRing) -> Self {
        let keys = (keys.all())
            .map(|(id, key)| Fingerprinter::with_key(id, key))
            .collect();
        Self { keys }
    }

    /// What an erasure of `user_id` records: its fingerprints in both purposes the stored data
    /// uses (`user`: the `user_id` column's `#user` form; `value`: a scrubbed body's `#str(n)`),
    /// under every key.
    pub fn of(&self, user_id: &str) -> Vec<String> {
        let mut all = Vec::with_capacity(self.keys.len() * 2);
        for key in &self.keys {
            all.push(key.fingerprint("user", user_id.as_bytes()));
            all.push(key.fingerprint("value", user_id.as_bytes()));
        }
        all
    }

    /// What to look a user id up by, as stored data holds it: the id's own fingerprints, and for
    /// a `#user`, `#str(n)` or `#num(n)` form the fingerprint it already is (an id may itself
    /// look like such a form, so both).
    pub fn lookups(&self, stored: &str) -> Vec<String> {
        let mut lookups: Vec<String> = (self.keys.iter())
            .map(|key| key.fingerprint("user", stored.as_bytes()))
            .collect();
        lookups.extend(stored_fingerprint(stored).map(str::to_string));
        lookups
    }
}

/// The fingerprint inside a stored form of a user id (`#user <fp>`, `#str(n) <fp>`,
/// `#num(n) <fp>`), `None` for a plain id.
fn stored_fingerprint(stored: &str) -> Option<&str> {
    if let Some(fingerprint) = stored.strip_prefix(USER_FINGERPRINT) {
        return Some(fingerprint);
    }
    let rest = (stored.strip_prefix("#str(")).or_else(|| stored.strip_prefix("#num("))?;
    let (chars, fingerprint) = rest.split_once(") ")?;
    (chars.bytes().all(|b| b.is_ascii_digit()) && !fingerprint.is_empty()).then_some(fingerprint)
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

/// The strings of the subject's logins in `body` (a scrubbed quarantine body): all of it if it is
/// the subject's as a whole, else those inside the objects whose own `user_id` is one of `forms`.
/// `erase` looks for the masks among them that only ever sat in quarantine.
pub fn subject_strings(body: &str, forms: &[String]) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if is_subjects(&value, forms) {
        strings(&value, &mut found);
    } else {
        subjects_strings(&value, forms, &mut found);
    }
    found
}

fn subjects_strings(value: &Value, forms: &[String], found: &mut Vec<String>) {
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(map) => Box::new(map.values()),
        _ => return,
    };
    for child in children {
        if is_subjects(child, forms) {
            strings(child, found);
        } else {
            subjects_strings(child, forms, found);
        }
    }
}

/// Every string value under `value`.
fn strings(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(s) => found.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, found)),
        Value::Object(map) => map.values().for_each(|v| strings(v, found)),
        _ => {}
    }
}

/// Whether `value` is an object whose own user id (`user_id`, or a field named like it:
/// `userId`, `UserID`, …) is one of `forms`.
fn is_subjects(value: &Value, forms: &[String]) -> bool {
    let Value::Object(map) = value else {
        return false;
    };
    let stored = match super::scrub::user_id_field(map) {
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
