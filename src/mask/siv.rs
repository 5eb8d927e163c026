//! `aes-siv`: deterministic authenticated encryption (AES-256-SIV, RFC 5297).
//!
//! `<key id>:base64url(SIV tag || ciphertext)`, with the field's domain as associated data. Equal
//! values under one key give equal masks (duplicates stay identifiable), and holders of the key can
//! recover the value with `login-etl reveal`. The cipher key is derived from the mask key with
//! HKDF-SHA256, so one key file serves every strategy. A device id of 128 bytes (the validation
//! limit) gives a mask of at most 17 + 192 characters: it fits `varchar(256)`.

use std::collections::HashMap;

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{Field, KeyRing, MaskStrategy, RevealError};

const HKDF_INFO: &[u8] = b"login-etl aes-siv v1";

/// Derived SIV keys for every key of the ring; the first masks.
#[derive(Clone)]
pub(crate) struct SivStrategy {
    active: String,
    keys: HashMap<String, Zeroizing<[u8; 64]>>,
}

impl std::fmt::Debug for SivStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "aes-siv(active key {}, <redacted>)", self.active)
    }
}

impl SivStrategy {
    /// Derive the cipher keys of the whole ring.
    pub(crate) fn new(keys: &KeyRing) -> Self {
        let derived = keys
            .all()
            .map(|(id, key)| {
                let mut okm = Zeroizing::new([0u8; 64]);
                Hkdf::<Sha256>::new(None, key.bytes())
                    .expand(HKDF_INFO, &mut okm[..])
                    .expect("64 bytes is a valid HKDF-SHA256 output length");
                (id.to_string(), okm)
            })
            .collect();
        Self {
            active: keys.active().0.to_string(),
            keys: derived,
        }
    }

    fn cipher(&self, key_id: &str) -> Option<Aes256Siv> {
        let key = self.keys.get(key_id)?;
        Some(Aes256Siv::new_from_slice(&key[..]).expect("64-byte key"))
    }
}

impl MaskStrategy for SivStrategy {
    fn name(&self) -> &'static str {
        "aes-siv"
    }

    fn key_id(&self) -> Option<&str> {
        Some(&self.active)
    }

    fn mask(&self, field: Field, canonical: &str) -> String {
        let mut cipher = self
            .cipher(&self.active)
            .expect("the active key is in the ring");
        let sealed = cipher
            .encrypt([field.domain()], canonical.as_bytes())
            .expect("SIV encryption of a bounded value cannot fail");
        format!("{}:{}", self.active, URL_SAFE_NO_PAD.encode(sealed))
    }

    fn reveal(&self, field: Field, mask: &str) -> Result<String, RevealError> {
        let (key_id, payload) = mask.split_once(':').ok_or(RevealError::Malformed)?;
        let mut cipher = self
            .cipher(key_id)
            .ok_or_else(|| RevealError::UnknownKey(key_id.to_string()))?;
        let sealed = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| RevealError::Malformed)?;
        let plain = cipher
            .decrypt([field.domain()], &sealed)
            .map_err(|_| RevealError::Tampered)?;
        String::from_utf8(plain).map_err(|_| RevealError::Tampered)
    }
}
