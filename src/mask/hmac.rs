//! `hmac-sha256` (default): `<key id>:hex(HMAC-SHA256(key, domain || 0x00 || value))`.
//! Keyed, deterministic, one-way: nobody without the key can compute or test a mask, and nobody,
//! key or not, can turn one back into the value.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Field, KeyRing, MaskStrategy, RevealError};

type HmacSha256 = Hmac<Sha256>;

/// Pre-keyed HMAC states per field for the active key.
#[derive(Clone)]
pub(crate) struct HmacStrategy {
    key_id: String,
    ip: HmacSha256,
    device_id: HmacSha256,
    ip_network: HmacSha256,
}

impl std::fmt::Debug for HmacStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hmac-sha256(active key {}, <redacted>)", self.key_id)
    }
}

impl HmacStrategy {
    /// Masks with the ring's active key.
    pub(crate) fn new(keys: &KeyRing) -> Self {
        let (key_id, key) = keys.active();
        let keyed = |field: Field| {
            let mut mac =
                HmacSha256::new_from_slice(key.bytes()).expect("HMAC accepts any key length");
            mac.update(field.domain());
            mac.update(&[0]);
            mac
        };
        Self {
            key_id: key_id.to_string(),
            ip: keyed(Field::Ip),
            device_id: keyed(Field::DeviceId),
            ip_network: keyed(Field::IpNetwork),
        }
    }
}

impl MaskStrategy for HmacStrategy {
    fn name(&self) -> &'static str {
        "hmac-sha256"
    }

    fn key_id(&self) -> Option<&str> {
        Some(&self.key_id)
    }

    fn mask(&self, field: Field, canonical: &str) -> String {
        let mut mac = match field {
            Field::Ip => self.ip.clone(),
            Field::DeviceId => self.device_id.clone(),
            Field::IpNetwork => self.ip_network.clone(),
        };
        mac.update(canonical.as_bytes());
        format!(
            "{}:{}",
            self.key_id,
            hex::encode(mac.finalize().into_bytes())
        )
    }

    fn reveal(&self, _field: Field, _mask: &str) -> Result<String, RevealError> {
        Err(RevealError::OneWay("hmac-sha256"))
    }
}

/// Short keyed fingerprints of arbitrary text (quarantine bodies, audit selectors): equal text,
/// equal fingerprint under one key; nothing about the text without the key. 64 bits: enough to
/// tell values apart in a diagnosis, too short to be a row mask.
#[derive(Clone)]
pub(crate) struct Fingerprinter {
    key_id: String,
    state: HmacSha256,
}

impl std::fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fingerprint(key {}, <redacted>)", self.key_id)
    }
}

/// Domain of fingerprints, apart from every field's masks.
const FINGERPRINT_DOMAIN: &[u8] = b"login-etl/v1/fingerprint";

impl Fingerprinter {
    /// Fingerprints under the ring's active key.
    pub(crate) fn new(keys: &KeyRing) -> Self {
        let (key_id, key) = keys.active();
        Self::with_key(key_id, key)
    }

    /// Fingerprints under one key of a ring.
    pub(crate) fn with_key(key_id: &str, key: &super::MaskKey) -> Self {
        let mut state =
            HmacSha256::new_from_slice(key.bytes()).expect("HMAC accepts any key length");
        state.update(FINGERPRINT_DOMAIN);
        state.update(&[0]);
        Self {
            key_id: key_id.to_string(),
            state,
        }
    }

    /// `<key id>:<16 hex>` of `text` in `purpose` (e.g. `value`, `user`).
    pub(crate) fn fingerprint(&self, purpose: &str, text: &[u8]) -> String {
        let mut mac = self.state.clone();
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(text);
        let digest = mac.finalize().into_bytes();
        format!("{}:{}", self.key_id, hex::encode(&digest[..8]))
    }
}
