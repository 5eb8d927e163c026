//! Key fingerprints: which key a key id stands for, without revealing the key.
//!
//! A fingerprint is HMAC-SHA256 of a fixed label under the key, cut to 128 bits: the same key
//! always gives the same fingerprint, another key (almost surely) another one, and without the
//! key nothing about it can be learnt from it. The database records each key id's fingerprint
//! the first time that key masks a row, so a key ring whose key for a known id was replaced is
//! refused before it masks anything (its masks would never match the old ones).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{KeyRing, MaskKey};

const LABEL: &[u8] = b"login-etl/key-fingerprint/v1";

/// The fingerprint of one key: 32 hex digits.
pub(crate) fn fingerprint(key: &MaskKey) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.bytes()).expect("HMAC accepts any key length");
    mac.update(LABEL);
    hex::encode(&mac.finalize().into_bytes()[..16])
}

impl KeyRing {
    /// `(key id, fingerprint)` of every key, the active one first.
    pub fn key_fingerprints(&self) -> Vec<(String, String)> {
        self.all()
            .map(|(id, key)| (id.to_string(), fingerprint(key)))
            .collect()
    }
}

/// The key ids whose key in the ring is not the one recorded for them, as one line that says
/// what to do; `None` when every recorded id matches (ids the database has not seen are fine).
pub fn replaced_keys(ring: &[(String, String)], recorded: &[(String, String)]) -> Option<String> {
    let replaced: Vec<String> = ring
        .iter()
        .filter_map(|(id, fingerprint)| {
            let known = recorded.iter().find(|(known, _)| known == id)?;
            (known.1 != *fingerprint).then(|| {
                format!(
                    "`{id}` (fingerprint {} in the key ring, {} in the database)",
                    short(fingerprint),
                    short(&known.1)
                )
            })
        })
        .collect();
    (!replaced.is_empty()).then(|| {
        format!(
            "the key ring's key for {} is not the key that masked the stored rows: its masks would \
             never match theirs and duplicates would go unnoticed; restore the original key ring \
             from its backup (docs/recovery.md), or give a new key a new id",
            replaced.join(", ")
        )
    })
}

fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_identify_keys_without_showing_them() {
        let key_a = "aa".repeat(32);
        let key_b = "bb".repeat(32);
        let a = KeyRing::parse(&format!("k1:{key_a}"))
            .unwrap()
            .key_fingerprints();
        let again = KeyRing::parse(&format!("k2:{key_b},k1:{key_a}"))
            .unwrap()
            .key_fingerprints();
        let b = KeyRing::parse(&format!("k1:{key_b}"))
            .unwrap()
            .key_fingerprints();
        assert_eq!(a[0], again[1], "the same key, the same fingerprint");
        assert_ne!(a[0].1, b[0].1, "another key, another fingerprint");
        assert_eq!(a[0].1.len(), 32);
        assert!(!key_a.contains(&a[0].1) && !a[0].1.contains("aaaa"));
        assert_eq!(replaced_keys(&a, &a), None);
        assert_eq!(replaced_keys(&b, &[]), None, "a new id is fine");
        assert_eq!(
            replaced_keys(&again, &a),
            None,
            "a new active key with a new id is fine"
        );
        let refused = replaced_keys(&b, &a).unwrap();
        assert!(refused.contains("`k1`") && refused.contains("docs/recovery.md"));
        assert!(
            !refused.contains(&key_b) && !refused.contains(&key_a),
            "{refused}"
        );
    }

    proptest::proptest! {
        /// Any ring against any record: refused exactly when a recorded id has another key in
        /// the ring, and the refusal names that id and never a key.
        #[test]
        fn refused_exactly_when_a_recorded_id_has_another_key(
            ring in proptest::collection::btree_map("k[0-9]", 0u8..4, 1..5),
            record in proptest::collection::btree_map("k[0-9]", 0u8..4, 0..5),
        ) {
            let key = |byte: u8| format!("{:02x}", 0x10 + byte).repeat(32);
            let fingerprints = |entries: &std::collections::BTreeMap<String, u8>| {
                let text: Vec<String> =
                    entries.iter().map(|(id, b)| format!("{id}:{}", key(*b))).collect();
                KeyRing::parse(&text.join(",")).unwrap().key_fingerprints()
            };
            let recorded = if record.is_empty() { Vec::new() } else { fingerprints(&record) };
            let refused = replaced_keys(&fingerprints(&ring), &recorded);
            let clash = ring.iter().find(|(id, b)| record.get(*id).is_some_and(|r| r != *b));
            proptest::prop_assert_eq!(refused.is_some(), clash.is_some());
            if let (Some(line), Some((id, b))) = (refused, clash) {
                let named = format!("`{id}`");
                proptest::prop_assert!(line.contains(&named), "{}", line);
                proptest::prop_assert!(!line.contains(&key(*b)[..16]), "{}", line);
            }
        }
    }
}
