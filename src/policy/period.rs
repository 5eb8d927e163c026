//! Time-scoped pseudonyms: the period a login falls in (by its own time, `sent_at`, in UTC), and
//! the key ring for that period, derived from the configured one with HKDF-SHA256 (the period in
//! the info). Equal values give equal masks inside a period and unrelated ones across periods;
//! masks keep the key id they were made under, and the row keeps its period.

use chrono::{DateTime, Datelike, Utc};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::Scope;
use crate::mask::keys::MaskKey;
use crate::mask::{KeyError, KeyRing};

/// The label of the period `at` falls in: `2026-12` (month), `2026-W49` (ISO week),
/// `2026-12-05` (day); `None` for [`Scope::All`].
pub fn label(scope: Scope, at: DateTime<Utc>) -> Option<String> {
    match scope {
        Scope::All => None,
        Scope::Month => Some(at.format("%Y-%m").to_string()),
        Scope::Week => {
            let week = at.iso_week();
            Some(format!("{}-W{:02}", week.year(), week.week()))
        }
        Scope::Day => Some(at.format("%Y-%m-%d").to_string()),
    }
}

/// HKDF info of a period's keys (versioned, apart from every other derivation of the ring).
fn info(period: &str) -> Vec<u8> {
    [b"login-etl/v1/period\0".as_slice(), period.as_bytes()].concat()
}

/// The key ring for one period: each key replaced by its HKDF-SHA256 derivation for `period`,
/// under the same id.
pub(crate) fn ring_for(keys: &KeyRing, period: &str) -> Result<KeyRing, KeyError> {
    let derived = keys
        .all()
        .map(|(id, key)| {
            let mut okm = Zeroizing::new(vec![0u8; 64]);
            Hkdf::<Sha256>::new(None, key.bytes())
                .expand(&info(period), &mut okm[..])
                .expect("64 bytes is a valid HKDF-SHA256 output length");
            Ok((id.to_string(), MaskKey::from_bytes(id, okm)?))
        })
        .collect::<Result<Vec<_>, KeyError>>()?;
    KeyRing::new(derived)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn periods_follow_the_calendar_in_utc() {
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(label(Scope::Month, at).unwrap(), "2026-12");
        assert_eq!(label(Scope::Day, at).unwrap(), "2026-12-31");
        // 31 Dec 2026 is a Thursday of ISO week 53 of 2026.
        assert_eq!(label(Scope::Week, at).unwrap(), "2026-W53");
        let jan = Utc.with_ymd_and_hms(2027, 1, 3, 0, 0, 0).unwrap();
        assert_eq!(label(Scope::Week, jan).unwrap(), "2026-W53");
        assert_eq!(label(Scope::All, at), None);
    }
}
