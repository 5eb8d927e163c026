//! Random keys per period, for revealable (`aes-siv`) values that `shred` must be able to make
//! unrecoverable. A key derived from the ring could always be derived again, so these are random,
//! made on first use and kept in the database only wrapped: AES-256-SIV under a key derived from
//! a ring key, with the period as associated data (a wrapped key moved to another period does not
//! open). Destroying the wrapped copy (`shred`) destroys the key: nothing else holds it but the
//! memory of running consumers, which stop using it before their next commit.
//!
//! Masks made under a period key name it as their key id: `@2026-12:<base64url>`. `@` is not
//! allowed in a ring key's id, so the two never meet.

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use chrono::{DateTime, Days, Months, NaiveDate, NaiveTime, Utc, Weekday};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{KeyError, KeyRing, MaskKey, Masker, StrategyName};

/// Bytes of a period key (it is expanded by HKDF like a ring key).
const PERIOD_KEY_BYTES: usize = 32;
/// HKDF info of the wrapping key made from a ring key.
const WRAP_INFO: &[u8] = b"login-etl/v1/period-key-wrap";
/// Associated data of a wrapped key, before its period.
const WRAP_DOMAIN: &[u8] = b"login-etl/v1/period-key";

/// A period's key as the database keeps it: sealed under the ring key `wrapped_by`.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedPeriodKey {
    /// The id of the ring key that wraps it.
    pub wrapped_by: String,
    /// SIV tag and ciphertext.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for WrappedPeriodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WrappedPeriodKey(by {}, <sealed>)", self.wrapped_by)
    }
}

/// The key id masks made under `period`'s key carry.
pub fn period_key_id(period: &str) -> String {
    format!("@{period}")
}

/// The period whose key made `mask`, if a period key made it.
pub fn period_of_mask(mask: &str) -> Option<&str> {
    mask.split_once(':')
        .and_then(|(id, _)| id.strip_prefix('@'))
        .filter(|p| !p.is_empty())
}

/// When a period begins (UTC), from its label: `2026-12`, `2026-W49`, `2026-12-05`. `None` for
/// anything else.
pub fn period_start(period: &str) -> Option<DateTime<Utc>> {
    Some(first_day(period)?.and_time(NaiveTime::MIN).and_utc())
}

/// When a period ends (exclusive, UTC): where the next one begins. `None` for anything else.
pub fn period_end(period: &str) -> Option<DateTime<Utc>> {
    let first = first_day(period)?;
    let next = match period.len() {
        7 => first.checked_add_months(Months::new(1))?,
        8 => first.checked_add_days(Days::new(7))?,
        _ => first.checked_add_days(Days::new(1))?,
    };
    Some(next.and_time(NaiveTime::MIN).and_utc())
}

/// Whether `period` has ended by `at` (what `shred --before at` destroys). A label that names no
/// period counts as ended: nothing is ever sealed under it.
pub fn period_ended_by(period: &str, at: DateTime<Utc>) -> bool {
    period_end(period).map_or(true, |end| end <= at)
}

fn first_day(period: &str) -> Option<NaiveDate> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match period.len() {
        7 => {
            let (year, month) = period.split_once('-')?;
            (year.len() == 4 && digits(year) && digits(month)).then_some(())?;
            NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").ok()
        }
        8 => {
            let (year, week) = period.split_once("-W")?;
            (digits(year) && digits(week)).then_some(())?;
            NaiveDate::from_isoywd_opt(year.parse().ok()?, week.parse().ok()?, Weekday::Mon)
        }
        10 => NaiveDate::parse_from_str(period, "%Y-%m-%d")
            .ok()
            .filter(|d| d.format("%Y-%m-%d").to_string() == period),
        _ => None,
    }
}

/// A fresh random key for `period`, wrapped under the ring's active key.
pub fn new_period_key(ring: &KeyRing, period: &str) -> WrappedPeriodKey {
    let mut key = Zeroizing::new([0u8; PERIOD_KEY_BYTES]);
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut key[..]);
    let (id, wrapping) = ring.active();
    let sealed = wrapper(wrapping)
        .encrypt([WRAP_DOMAIN, period.as_bytes()], &key[..])
        .expect("SIV encryption of 32 bytes cannot fail");
    WrappedPeriodKey {
        wrapped_by: id.to_string(),
        sealed,
    }
}

/// The same key wrapped under the ring's active key (after a key rotation, before `retire-key`).
pub fn rewrap_period_key(
    ring: &KeyRing,
    period: &str,
    wrapped: &WrappedPeriodKey,
) -> Result<WrappedPeriodKey, KeyError> {
    let key = open(ring, period, wrapped)?;
    let (id, wrapping) = ring.active();
    let sealed = wrapper(wrapping)
        .encrypt([WRAP_DOMAIN, period.as_bytes()], &key[..])
        .expect("SIV encryption of 32 bytes cannot fail");
    Ok(WrappedPeriodKey {
        wrapped_by: id.to_string(),
        sealed,
    })
}

/// The aes-siv masker of `period`, from its wrapped key: masks `@<period>:…`.
pub fn period_masker(
    ring: &KeyRing,
    period: &str,
    wrapped: &WrappedPeriodKey,
) -> Result<Masker, KeyError> {
    let key = open(ring, period, wrapped)?;
    let id = period_key_id(period);
    let key = MaskKey::from_bytes(&id, key)?;
    Masker::new(StrategyName::AesSiv, Some(&KeyRing::new(vec![(id, key)])?))
}

fn open(
    ring: &KeyRing,
    period: &str,
    wrapped: &WrappedPeriodKey,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let unusable = |why: &str| {
        KeyError::Invalid(format!(
            "the key of period {period} is wrapped by key `{}`, {why}",
            wrapped.wrapped_by
        ))
    };
    let (_, wrapping) = ring
        .all()
        .find(|(id, _)| *id == wrapped.wrapped_by)
        .ok_or_else(|| unusable("which is not in the key ring (add it to the ring)"))?;
    let key = wrapper(wrapping)
        .decrypt([WRAP_DOMAIN, period.as_bytes()], &wrapped.sealed)
        .map_err(|_| {
            unusable("and does not open under it (another key with that id, or altered)")
        })?;
    Ok(Zeroizing::new(key))
}

fn wrapper(ring_key: &MaskKey) -> Aes256Siv {
    let mut okm = Zeroizing::new([0u8; 64]);
    Hkdf::<Sha256>::new(None, ring_key.bytes())
        .expand(WRAP_INFO, &mut okm[..])
        .expect("64 bytes is a valid HKDF-SHA256 output length");
    Aes256Siv::new_from_slice(&okm[..]).expect("64-byte key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::Field;

    fn ring(text: &str) -> KeyRing {
        KeyRing::parse(text).unwrap()
    }

    #[test]
    fn a_period_key_opens_only_under_its_ring_and_period() {
        let keys = ring(&format!("k1:{}", "ab".repeat(32)));
        let wrapped = new_period_key(&keys, "2026-12");
        assert_eq!(wrapped.wrapped_by, "k1");
        let masker = period_masker(&keys, "2026-12", &wrapped).unwrap();
        let mask = masker.mask(Field::Ip, "192.0.2.1");
        assert!(mask.starts_with("@2026-12:"), "{mask}");
        assert_eq!(period_of_mask(&mask), Some("2026-12"));
        assert_eq!(masker.reveal(Field::Ip, &mask).unwrap(), "192.0.2.1");
        // Equal values match inside the period; a fresh key for it is another key.
        assert_eq!(masker.mask(Field::Ip, "192.0.2.1"), mask);
        let other = period_masker(&keys, "2026-12", &new_period_key(&keys, "2026-12")).unwrap();
        assert_ne!(other.mask(Field::Ip, "192.0.2.1"), mask);
        // Moved to another period, or under another ring, it does not open.
        assert!(period_masker(&keys, "2026-11", &wrapped).is_err());
        let stranger = ring(&format!("k1:{}", "cd".repeat(32)));
        assert!(period_masker(&stranger, "2026-12", &wrapped).is_err());
        let rotated = ring(&format!("k2:{},k1:{}", "cd".repeat(32), "ab".repeat(32)));
        let rewrapped = rewrap_period_key(&rotated, "2026-12", &wrapped).unwrap();
        assert_eq!(rewrapped.wrapped_by, "k2");
        let again = period_masker(&rotated, "2026-12", &rewrapped).unwrap();
        assert_eq!(again.reveal(Field::Ip, &mask).unwrap(), "192.0.2.1");
        assert!(!format!("{wrapped:?}").contains(&hex::encode(&wrapped.sealed)));
    }

    #[test]
    fn a_period_ends_where_the_next_begins() {
        let end = |p| period_end(p).map(|t| t.to_rfc3339());
        assert_eq!(end("2026-12").unwrap(), "2027-01-01T00:00:00+00:00");
        assert_eq!(end("2026-12-31").unwrap(), "2027-01-01T00:00:00+00:00");
        // ISO week 53 of 2026 ends on Monday 4 January 2027.
        assert_eq!(end("2026-W53").unwrap(), "2027-01-04T00:00:00+00:00");
        assert_eq!(
            period_start("2026-W53").map(|t| t.to_rfc3339()).unwrap(),
            "2026-12-28T00:00:00+00:00"
        );
        for bad in [
            "2026-13",
            "2026-W54",
            "2026-02-30",
            "2026",
            "x",
            "2026-1-1",
            "",
            "20é-01",
            "2026-é",
            "+2026-1",
            "2026-+1",
        ] {
            assert_eq!(period_start(bad), None, "{bad}");
            assert_eq!(end(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_period_key_ids_name_a_period() {
        assert_eq!(period_of_mask("k1:abc"), None);
        assert_eq!(period_of_mask("@:abc"), None);
        assert_eq!(period_of_mask("@2026-W49:abc"), Some("2026-W49"));
    }
}
