//! Masking of the PII fields `ip` and `device_id`.
//!
//! The mask is `hex(HMAC-SHA256(key, domain || 0x00 || canonical value))`: deterministic, so equal
//! values give equal masks and duplicates stay identifiable, but irreversible and un-guessable without
//! the key. A plain SHA-256 would not do: the whole IPv4 space is 2^32 values and can be hashed on a
//! laptop in minutes. Each field has its own domain, so an `ip` and a `device_id` that happen to be
//! the same text do not produce the same mask.
//!
//! This is the only module that sees the key; nothing raw leaves [`Masker::mask_event`].

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::event::LoginEvent;

type HmacSha256 = Hmac<Sha256>;

/// Shortest key accepted: 256 bits, the HMAC-SHA256 block-size-safe strength.
pub const MIN_KEY_BYTES: usize = 32;

/// Field domains, kept distinct so that one field's masks can't be matched against another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The client IP address (canonical text).
    Ip,
    /// The device identifier (trimmed).
    DeviceId,
}

impl Field {
    fn domain(self) -> &'static [u8] {
        match self {
            Field::Ip => b"login-etl/v1/ip",
            Field::DeviceId => b"login-etl/v1/device_id",
        }
    }
}

/// Why a key can't be used. Messages say what to fix and never echo key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither the env var nor a key file was given.
    #[error(
        "no masking key: set LOGIN_ETL_MASK_KEY or pass --mask-key-file \
         (generate one with `openssl rand -hex 32`)"
    )]
    Missing,
    /// The key text is not hexadecimal.
    #[error("the masking key must be hexadecimal (e.g. the output of `openssl rand -hex 32`)")]
    NotHex,
    /// The key is too short to be safe.
    #[error("the masking key is {0} bytes, at least {MIN_KEY_BYTES} are required")]
    TooShort(usize),
    /// The key file could not be read.
    #[error("cannot read masking key file {path}: {source}")]
    File {
        /// The path as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Secret key bytes, zeroed when dropped and never printed.
#[derive(Clone)]
pub struct MaskKey(Zeroizing<Vec<u8>>);

impl fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaskKey(<redacted>)")
    }
}

impl MaskKey {
    /// Parse a hex-encoded key (surrounding whitespace ignored, as in a file with a trailing newline).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| KeyError::NotHex)?);
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// Read a hex key from a file.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyError::File {
                    path: path.display().to_string(),
                    source,
                })?,
            );
        Self::from_hex(&text)
    }

    /// A fresh random key, hex-encoded, for `keygen` and the local demo.
    pub fn generate_hex() -> Zeroizing<String> {
        let mut bytes = Zeroizing::new([0u8; MIN_KEY_BYTES]);
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut bytes[..]);
        Zeroizing::new(hex::encode(&bytes[..]))
    }
}

/// A login event whose PII has been replaced by masks; the only shape that reaches the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedLogin {
    /// As received.
    pub user_id: String,
    /// As received.
    pub device_type: String,
    /// 64 hex characters.
    pub masked_ip: String,
    /// 64 hex characters.
    pub masked_device_id: String,
    /// As received.
    pub locale: Option<String>,
    /// As received.
    pub app_version: Option<String>,
}

/// Keyed, deterministic masking. Cheap to clone (pre-keyed HMAC states).
#[derive(Clone)]
pub struct Masker {
    ip: HmacSha256,
    device_id: HmacSha256,
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Masker(hmac-sha256, <key redacted>)")
    }
}

impl Masker {
    /// Build a masker; the key is absorbed into per-field HMAC states up front.
    pub fn new(key: &MaskKey) -> Self {
        let keyed = |field: Field| {
            let mut mac = HmacSha256::new_from_slice(&key.0).expect("HMAC accepts any key length");
            mac.update(field.domain());
            mac.update(&[0]);
            mac
        };
        Self {
            ip: keyed(Field::Ip),
            device_id: keyed(Field::DeviceId),
        }
    }

    /// Mask one value in a field's domain. The caller is responsible for canonical form.
    pub fn mask(&self, field: Field, canonical: &str) -> String {
        let mut mac = match field {
            Field::Ip => self.ip.clone(),
            Field::DeviceId => self.device_id.clone(),
        };
        mac.update(canonical.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Mask an address in its canonical text form.
    pub fn mask_ip(&self, ip: &IpAddr) -> String {
        self.mask(Field::Ip, &ip.to_canonical().to_string())
    }

    /// Replace the PII of a validated event; the raw values are dropped with `event`.
    pub fn mask_event(&self, event: LoginEvent) -> MaskedLogin {
        MaskedLogin {
            masked_ip: self.mask_ip(&event.ip),
            masked_device_id: self.mask(Field::DeviceId, event.device_id.trim()),
            user_id: event.user_id,
            device_type: event.device_type,
            locale: event.locale,
            app_version: event.app_version,
        }
    }

    /// Mask the top-level `ip` and `device_id` of an arbitrary JSON object in place, whatever their
    /// type, so a rejected body can be kept for diagnosis without its PII.
    pub fn mask_json_fields(&self, object: &mut serde_json::Map<String, serde_json::Value>) {
        for (name, field) in [("ip", Field::Ip), ("device_id", Field::DeviceId)] {
            if let Some(value) = object.get_mut(name) {
                if value.is_null() {
                    continue;
                }
                let canonical = match (&*value, field) {
                    (serde_json::Value::String(s), Field::Ip) => crate::event::canonical_ip(s)
                        .map(|ip| ip.to_string())
                        .unwrap_or_else(|| s.clone()),
                    (serde_json::Value::String(s), Field::DeviceId) => s.trim().to_string(),
                    (other, _) => other.to_string(),
                };
                *value = serde_json::Value::String(self.mask(field, &canonical));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn masker(byte: u8) -> Masker {
        Masker::new(&MaskKey::from_hex(&hex::encode([byte; 32])).unwrap())
    }

    #[test]
    fn masks_are_64_hex_chars_and_deterministic() {
        let m = masker(1);
        let a = m.mask(Field::DeviceId, "593-47-5928");
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, masker(1).mask(Field::DeviceId, "593-47-5928"));
    }

    #[test]
    fn key_and_domain_both_change_the_mask() {
        let m = masker(1);
        assert_ne!(
            m.mask(Field::Ip, "1.2.3.4"),
            masker(2).mask(Field::Ip, "1.2.3.4")
        );
        assert_ne!(
            m.mask(Field::Ip, "1.2.3.4"),
            m.mask(Field::DeviceId, "1.2.3.4")
        );
    }

    #[test]
    fn ip_variants_of_one_address_mask_equally() {
        let m = masker(1);
        let a = m.mask_ip(&"1.2.3.4".parse().unwrap());
        let b = m.mask_ip(&"::ffff:1.2.3.4".parse().unwrap());
        assert_eq!(a, b);
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        assert!(matches!(MaskKey::from_hex("zz"), Err(KeyError::NotHex)));
        let err = MaskKey::from_hex("abcd").unwrap_err();
        assert!(matches!(err, KeyError::TooShort(2)));
        assert!(!err.to_string().contains("abcd"));
        assert_eq!(
            format!("{:?}", MaskKey::from_hex(&"ab".repeat(32)).unwrap()),
            "MaskKey(<redacted>)"
        );
    }

    #[test]
    fn generated_keys_are_accepted_and_differ() {
        let a = MaskKey::generate_hex();
        assert!(MaskKey::from_hex(&a).is_ok());
        assert_ne!(*a, *MaskKey::generate_hex());
    }

    #[test]
    fn json_fields_are_masked_whatever_their_type() {
        let m = masker(1);
        let mut obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"ip": 3232235777, "device_id": " 593-47-5928 ", "x": 1}"#)
                .unwrap();
        m.mask_json_fields(&mut obj);
        assert_eq!(obj["device_id"], m.mask(Field::DeviceId, "593-47-5928"));
        assert_eq!(obj["ip"], m.mask(Field::Ip, "3232235777"));
        assert_eq!(obj["x"], 1);
    }

    proptest! {
        #[test]
        fn distinct_values_give_distinct_masks(a in ".{0,40}", b in ".{0,40}") {
            prop_assume!(a != b);
            let m = masker(7);
            prop_assert_ne!(m.mask(Field::DeviceId, &a), m.mask(Field::DeviceId, &b));
        }
    }
}
