//! `sha256`: `hex(SHA-256(value))`, unkeyed, without prefix or domain — only to stay compatible with
//! existing tables built that way. It is not masking: IPv4 has 2^32 values, so every IPv4 mask can
//! be reversed by hashing them all (minutes on a laptop; `tests/privacy.rs` does a /16 in
//! milliseconds). Must be asked for explicitly, and warns at start.

use sha2::{Digest, Sha256};

use super::{Field, MaskStrategy, RevealError};

/// Unkeyed SHA-256.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sha256Strategy;

impl MaskStrategy for Sha256Strategy {
    fn name(&self) -> &'static str {
        "sha256"
    }

    fn key_id(&self) -> Option<&str> {
        None
    }

    fn mask(&self, _field: Field, canonical: &str) -> String {
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }

    fn reveal(&self, _field: Field, _mask: &str) -> Result<String, RevealError> {
        Err(RevealError::OneWay("sha256"))
    }
}
