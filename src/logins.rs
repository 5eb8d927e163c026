//! Several logins in one body: producers that pay per request send a JSON array of logins, or
//! newline-delimited JSON (one login per line). Each element becomes its own row or quarantine
//! entry; the message stays the unit of the ledger. Counting stops past the cap, so an oversized
//! array costs a scan of the body, never an allocation per element beyond the cap.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::validate::{RejectCode, Rejection};

/// The logins a body holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Logins<'a> {
    /// The body is one login (or not a login at all: validation says which).
    One,
    /// A JSON array or NDJSON: each element's text, in order.
    Many(Vec<&'a str>),
}

/// Split `text` into its logins, refusing more than `max` of them (or none).
pub fn split(text: &str, max: usize) -> Result<Logins<'_>, Rejection> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        return match array(trimmed, max) {
            // Not a well-formed array: validated as one body, which names what is wrong.
            None => Ok(Logins::One),
            Some((elements, total)) => checked(elements, total, max, "JSON array"),
        };
    }
    if trimmed.starts_with('{') && trimmed.contains('\n') && !is_one_value(trimmed) {
        let mut lines = trimmed.lines().map(str::trim).filter(|l| !l.is_empty());
        let first = lines.next().unwrap_or_default();
        if is_one_value(first) {
            let elements: Vec<&str> = std::iter::once(first)
                .chain(lines.by_ref().take(max.saturating_sub(1)))
                .collect();
            let total = elements.len() + lines.count();
            return checked(elements, total, max, "NDJSON body");
        }
    }
    Ok(Logins::One)
}

fn checked<'a>(
    elements: Vec<&'a str>,
    total: usize,
    max: usize,
    what: &str,
) -> Result<Logins<'a>, Rejection> {
    if total == 0 {
        return Err(Rejection::new(
            RejectCode::NotAnObject,
            format!("an empty {what} holds no login"),
        ));
    }
    if total > max {
        return Err(Rejection::new(
            RejectCode::TooManyLogins,
            format!("a {what} of {total} logins, more than --max-logins-per-message ({max})"),
        ));
    }
    Ok(Logins::Many(elements))
}

fn is_one_value(text: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(text).is_ok()
}

/// The first `max` elements of a JSON array as raw text, and how many it has in all; `None` if
/// `text` is not one well-formed array.
fn array(text: &str, max: usize) -> Option<(Vec<&str>, usize)> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let found = deserializer.deserialize_seq(Capped { max }).ok()?;
    deserializer.end().ok()?;
    Some(found)
}

/// Keeps the first `max` elements, counts the rest without keeping them.
struct Capped {
    max: usize,
}

impl<'de> Visitor<'de> for Capped {
    type Value = (Vec<&'de str>, usize);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut kept = Vec::new();
        let mut total = 0;
        loop {
            if kept.len() < self.max {
                match seq.next_element::<&'de RawValue>()? {
                    Some(raw) => kept.push(raw.get()),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            total += 1;
        }
        Ok((kept, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = r#"{"user_id":"a"}"#;
    const B: &str = r#"{"user_id":"b","x":[1,2]}"#;

    #[test]
    fn arrays_and_ndjson_split_into_their_elements() {
        assert_eq!(split(A, 10), Ok(Logins::One));
        assert_eq!(
            split(&format!(" [ {A} , {B} ] "), 10),
            Ok(Logins::Many(vec![A, B]))
        );
        assert_eq!(
            split(&format!("{A}\n\n{B}\r\n"), 10),
            Ok(Logins::Many(vec![A, B]))
        );
        // A pretty-printed object is one login, not lines.
        assert_eq!(split("{\n  \"user_id\": \"a\"\n}", 10), Ok(Logins::One));
        // Elements that are not logins are still elements: validation quarantines each alone.
        assert_eq!(
            split("[1, \"x\", null]", 10),
            Ok(Logins::Many(vec!["1", "\"x\"", "null"]))
        );
        // Broken JSON is one body, refused as such.
        assert_eq!(split("[1, 2", 10), Ok(Logins::One));
        assert_eq!(
            split(&format!("{A}\n{{oops"), 10),
            Ok(Logins::Many(vec![A, "{oops"]))
        );
    }

    #[test]
    fn empty_and_oversized_bodies_are_refused_with_the_count() {
        assert_eq!(split("[]", 10).unwrap_err().code, RejectCode::NotAnObject);
        let many = format!("[{}]", [A; 11].join(","));
        let err = split(&many, 10).unwrap_err();
        assert_eq!(err.code, RejectCode::TooManyLogins);
        assert!(err.message.contains("of 11 logins"), "{err}");
        let lines = [A; 12].join("\n");
        assert!(split(&lines, 10)
            .unwrap_err()
            .message
            .contains("of 12 logins"));
        assert_eq!(
            split(&[A; 10].join("\n"), 10).map(|l| l != Logins::One),
            Ok(true)
        );
    }

    proptest! {
        /// Any text at all: never a panic; a split keeps at most `max` elements, each a piece of
        /// the body as it was sent.
        #[test]
        fn any_body_splits_within_the_cap_or_stays_one(
            text in prop_oneof![".{0,200}", "[\\[\\]{}\",:0-9a-z \n\r]{0,200}"],
            max in 1usize..8,
        ) {
            match split(&text, max) {
                Ok(Logins::Many(found)) => {
                    prop_assert!(!found.is_empty() && found.len() <= max);
                    prop_assert!(found.iter().all(|e| text.contains(e)));
                }
                Ok(Logins::One) => {}
                Err(e) => prop_assert!(matches!(e.code, RejectCode::TooManyLogins | RejectCode::NotAnObject)),
            }
        }

        #[test]
        fn every_element_is_kept_once_in_order(n in 1usize..40, max in 1usize..40, ndjson: bool) {
            let elements: Vec<String> = (0..n).map(|i| format!(r#"{{"user_id":"{i}"}}"#)).collect();
            let body = if ndjson { elements.join("\n") } else { format!("[{}]", elements.join(",")) };
            match split(&body, max) {
                Ok(Logins::Many(found)) => {
                    prop_assert!(n <= max);
                    prop_assert_eq!(found, elements.iter().map(String::as_str).collect::<Vec<_>>());
                }
                Ok(Logins::One) => prop_assert!(ndjson && n == 1),
                Err(e) => {
                    prop_assert!(n > max);
                    prop_assert_eq!(e.code, RejectCode::TooManyLogins);
                }
            }
        }
    }
}
