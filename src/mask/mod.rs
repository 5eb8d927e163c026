//! Masking of the PII fields `ip` and `device_id`: one trait, three strategies.
//!
//! | strategy | keyed | duplicates identifiable | reversible | use |
//! |---|---|---|---|---|
//! | [`hmac-sha256`](hmac) (default) | yes | yes, per key | no | analytics that must never see the values |
//! | [`aes-siv`](siv) | yes | yes, per key | by key holders, audited (`reveal`) | when PII may have to be recovered |
//! | [`sha256`](sha256) | **no** | yes | **yes, by brute force for IPv4** | compatibility with existing tables only |
//!
//! Keyed masks start with the id of the key that made them (`k1:…`), so keys can be rotated: the
//! active key masks, every known key can reveal. Each field has its own domain, so equal text in
//! `ip` and `device_id` never gives equal masks. This module is the only one that sees keys;
//! nothing raw leaves [`Masker::mask_event`].

mod hmac;
pub mod keys;
pub(crate) mod kms;
pub mod network;
mod rekey;
mod scrub;
mod sha256;
mod siv;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

pub(crate) use keys::MaskKey;
pub use keys::{KeyError, KeyRing};
pub use network::{NetworkMaskMode, NetworkMasker, NetworkPrefixes};
pub use rekey::Rekeyer;
pub use scrub::{contains_ip, ScrubbedBody, USER_FINGERPRINT};

use crate::event::LoginEvent;

/// Field domains, kept distinct so that one field's masks can't be matched against another's.
/// Also what `reveal --field` takes (`ip`, `device-id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The client IP address (canonical text).
    Ip,
    /// The device identifier (trimmed).
    DeviceId,
    /// The address's network pseudonym (`masked_ip_network`; only `ipcrypt-pfx` ones reveal).
    IpNetwork,
}

impl Field {
    fn domain(self) -> &'static [u8] {
        match self {
            Field::Ip => b"login-etl/v1/ip",
            Field::DeviceId => b"login-etl/v1/device_id",
            Field::IpNetwork => b"login-etl/v1/ip-network",
        }
    }
}

/// Why a mask can't be turned back into a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RevealError {
    /// Hash-based masks are one-way by design.
    #[error("this is a {0} mask: it is one-way and cannot be revealed (only aes-siv masks can)")]
    OneWay(&'static str),
    /// The mask names a key we don't have.
    #[error("the mask was made with key `{0}`, which is not in the key ring")]
    UnknownKey(String),
    /// Not a mask of the expected shape.
    #[error("not an aes-siv mask (expected <key id>:<base64url>)")]
    Malformed,
    /// Authentication failed: wrong field, wrong key material, or an altered mask.
    #[error("the mask does not authenticate under its key (altered, or from another field)")]
    Tampered,
}

/// A way of masking values; see the module docs for the three implementations.
pub(crate) trait MaskStrategy: Send + Sync + fmt::Debug {
    /// The name used by `--mask-strategy`.
    fn name(&self) -> &'static str;
    /// The id of the key new masks are made with (`None` for the unkeyed strategy).
    fn key_id(&self) -> Option<&str>;
    /// Mask a canonical value in a field's domain.
    fn mask(&self, field: Field, canonical: &str) -> String;
    /// Recover the value, where the strategy allows it.
    fn reveal(&self, field: Field, mask: &str) -> Result<String, RevealError>;
}

/// The strategies `--mask-strategy` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyName {
    /// Keyed HMAC-SHA256: deterministic, one-way (default).
    HmacSha256,
    /// AES-256-SIV: deterministic, reversible by key holders.
    AesSiv,
    /// Unkeyed SHA-256: only for tables already built that way; IPv4 masks are brute-forceable.
    Sha256,
}

/// A login event whose PII has been replaced by masks; the only shape that reaches the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedLogin {
    /// As received.
    pub user_id: String,
    /// As received.
    pub device_type: String,
    /// Mask of the canonical address.
    pub masked_ip: String,
    /// Mask of the trimmed device id.
    pub masked_device_id: String,
    /// As received.
    pub locale: Option<String>,
    /// As received.
    pub app_version: Option<String>,
    /// Network pseudonym (`--ip-network-mask`), `None` when off.
    pub masked_ip_network: Option<String>,
}

/// Which strategy made a stored mask, from its shape: `sha256` is 64 hex characters, `hmac-sha256`
/// is `<id>:` plus 64 hex characters, anything else of the form `<id>:<base64url>` is `aes-siv`.
/// (An aes-siv mask that happens to be 64 hex characters has probability 2^-128.)
pub fn strategy_of(mask: &str) -> StrategyName {
    let hex = |s: &str| s.len() == HASH_HEX_DIGITS && s.bytes().all(|b| b.is_ascii_hexdigit());
    match mask.split_once(':') {
        None if hex(mask) => StrategyName::Sha256,
        Some((id, payload)) if !id.is_empty() && hex(payload) => StrategyName::HmacSha256,
        _ => StrategyName::AesSiv,
    }
}

/// Hex digits of a hash-based mask (SHA-256 and HMAC-SHA256 output).
const HASH_HEX_DIGITS: usize = 64;

/// The same rule as [`strategy_of`], for SQL that picks masks by strategy: a condition that is
/// true when `column` holds an `hmac-sha256` mask (`<id>:` and 64 hex digits, either case).
pub fn sql_is_hmac_mask(column: &str) -> String {
    format!("({column} ~ '^[^:]+:[0-9a-fA-F]{{{HASH_HEX_DIGITS}}}$')")
}

impl StrategyName {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyName::HmacSha256 => "hmac-sha256",
            StrategyName::AesSiv => "aes-siv",
            StrategyName::Sha256 => "sha256",
        }
    }
}

/// The masking façade the pipeline uses: canonicalises, then applies the chosen strategy.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Masker {
    strategy: Arc<dyn MaskStrategy>,
    network: Option<Arc<NetworkMasker>>,
    /// Fingerprints for quarantine bodies and audit rows (keyed strategies only).
    fingerprints: Option<Arc<hmac::Fingerprinter>>,
}

impl Masker {
    /// A masker for a strategy; keyed strategies need `keys`.
    pub fn new(strategy: StrategyName, keys: Option<&KeyRing>) -> Result<Self, KeyError> {
        let inner: Arc<dyn MaskStrategy> = match (strategy, keys) {
            (StrategyName::Sha256, _) => Arc::new(sha256::Sha256Strategy),
            (_, None) => return Err(KeyError::Missing),
            (StrategyName::HmacSha256, Some(keys)) => Arc::new(hmac::HmacStrategy::new(keys)),
            (StrategyName::AesSiv, Some(keys)) => Arc::new(siv::SivStrategy::new(keys)),
        };
        Ok(Self {
            strategy: inner,
            network: None,
            fingerprints: keys.map(|k| Arc::new(hmac::Fingerprinter::new(k))),
        })
    }

    /// The default strategy with these keys.
    pub fn hmac(keys: &KeyRing) -> Self {
        Self {
            strategy: Arc::new(hmac::HmacStrategy::new(keys)),
            network: None,
            fingerprints: Some(Arc::new(hmac::Fingerprinter::new(keys))),
        }
    }

    /// Also fill `masked_ip_network` with this network masker (`None`: leave it NULL).
    pub fn with_network(mut self, network: Option<NetworkMasker>) -> Self {
        self.network = network.map(Arc::new);
        self
    }

    /// The strategy's name.
    pub fn strategy(&self) -> &'static str {
        self.strategy.name()
    }

    /// The id of the key new masks are made with (`None` for the unkeyed strategy).
    pub fn key_id(&self) -> Option<&str> {
        self.strategy.key_id()
    }

    /// Mask one value in a field's domain. The caller is responsible for canonical form.
    pub fn mask(&self, field: Field, canonical: &str) -> String {
        self.strategy.mask(field, canonical)
    }

    /// Recover a value from its mask, where the strategy allows it. A mask made by a one-way
    /// strategy is refused as such, whatever this masker's own strategy is.
    pub fn reveal(&self, field: Field, mask: &str) -> Result<String, RevealError> {
        match strategy_of(mask) {
            StrategyName::AesSiv => self.strategy.reveal(field, mask),
            one_way => Err(RevealError::OneWay(one_way.as_str())),
        }
    }

    /// Mask an address in its canonical text form.
    pub fn mask_ip(&self, ip: &IpAddr) -> String {
        self.mask(Field::Ip, &ip.to_canonical().to_string())
    }

    /// Replace the PII of a validated event; the raw values are dropped with `event`.
    pub fn mask_event(&self, event: LoginEvent) -> MaskedLogin {
        MaskedLogin {
            masked_ip_network: self.network.as_ref().map(|n| n.mask(&event.ip)),
            masked_ip: self.mask_ip(&event.ip),
            masked_device_id: self.mask(Field::DeviceId, event.device_id.trim()),
            user_id: event.user_id,
            device_type: event.device_type,
            locale: event.locale,
            app_version: event.app_version,
        }
    }

    /// A keyed fingerprint of `text` for `purpose` (`<key id>:<16 hex>`) under the active key,
    /// `None` without a key.
    pub fn fingerprint(&self, purpose: &str, text: &[u8]) -> Option<String> {
        self.fingerprints
            .as_ref()
            .map(|f| f.fingerprint(purpose, text))
    }
}

/// The fingerprints of a user id under every key of the ring, active first: what an audit row
/// made under any of them records for that user (`erase` finds them all).
pub fn user_fingerprints(keys: &KeyRing, user_id: &str) -> Vec<String> {
    keys.all()
        .map(|(id, key)| {
            hmac::Fingerprinter::with_key(id, key).fingerprint("user", user_id.as_bytes())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring(entries: &[(&str, u8)]) -> KeyRing {
        let text: Vec<String> = entries
            .iter()
            .map(|(id, byte)| format!("{id}:{}", hex::encode([*byte; 64])))
            .collect();
        KeyRing::parse(&text.join("\n")).unwrap()
    }

    fn masker(strategy: StrategyName, entries: &[(&str, u8)]) -> Masker {
        Masker::new(strategy, Some(&ring(entries))).unwrap()
    }

    const KEYED: [StrategyName; 2] = [StrategyName::HmacSha256, StrategyName::AesSiv];

    #[test]
    fn hmac_masks_are_the_key_id_and_64_hex_chars() {
        let m = masker(StrategyName::HmacSha256, &[("k1", 1)]);
        let mask = m.mask(Field::DeviceId, "593-47-5928");
        let (id, hex) = mask.split_once(':').unwrap();
        assert_eq!(id, "k1");
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn every_keyed_strategy_is_deterministic_keyed_and_domain_separated() {
        for s in KEYED {
            let m = masker(s, &[("k1", 1)]);
            assert_eq!(
                m.mask(Field::Ip, "1.2.3.4"),
                masker(s, &[("k1", 1)]).mask(Field::Ip, "1.2.3.4"),
                "{s:?}"
            );
            assert_ne!(
                m.mask(Field::Ip, "1.2.3.4"),
                masker(s, &[("k1", 2)]).mask(Field::Ip, "1.2.3.4"),
                "{s:?}"
            );
            assert_ne!(
                m.mask(Field::Ip, "1.2.3.4"),
                m.mask(Field::DeviceId, "1.2.3.4"),
                "{s:?}"
            );
        }
    }

    #[test]
    fn ip_variants_of_one_address_mask_equally() {
        for s in [
            StrategyName::HmacSha256,
            StrategyName::AesSiv,
            StrategyName::Sha256,
        ] {
            let m = masker(s, &[("k1", 1)]);
            assert_eq!(
                m.mask_ip(&"1.2.3.4".parse().unwrap()),
                m.mask_ip(&"::ffff:1.2.3.4".parse().unwrap())
            );
        }
    }

    #[test]
    fn aes_siv_round_trips_and_fits_the_column() {
        let m = masker(StrategyName::AesSiv, &[("k1", 1)]);
        let longest_device = "é".repeat(64); // 128 bytes: the validation limit
        for (field, value) in [
            (Field::Ip, "255.255.255.255"),
            (Field::Ip, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"),
            (Field::DeviceId, "593-47-5928"),
            (Field::DeviceId, longest_device.as_str()),
        ] {
            let mask = m.mask(field, value);
            assert!(mask.starts_with("k1:"));
            assert!(
                mask.len() <= 256 - 14,
                "{} chars leave room for a 16-char key id",
                mask.len()
            );
            assert_eq!(m.reveal(field, &mask).unwrap(), value);
        }
    }

    #[test]
    fn aes_siv_rejects_the_wrong_field_unknown_keys_and_tampering() {
        let m = masker(StrategyName::AesSiv, &[("k1", 1)]);
        let mask = m.mask(Field::Ip, "10.0.0.1");
        assert_eq!(m.reveal(Field::DeviceId, &mask), Err(RevealError::Tampered));
        let mut altered = mask.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            m.reveal(Field::Ip, std::str::from_utf8(&altered).unwrap()),
            Err(RevealError::Tampered)
        );
        let other = masker(StrategyName::AesSiv, &[("k9", 1)]);
        assert_eq!(
            other.reveal(Field::Ip, &mask),
            Err(RevealError::UnknownKey("k1".into()))
        );
        assert_eq!(m.reveal(Field::Ip, "no-colon"), Err(RevealError::Malformed));
    }

    #[test]
    fn stored_masks_tell_their_strategy() {
        let keys = [("k1", 1)];
        for s in [
            StrategyName::HmacSha256,
            StrategyName::AesSiv,
            StrategyName::Sha256,
        ] {
            assert_eq!(
                strategy_of(&masker(s, &keys).mask(Field::Ip, "10.0.0.1")),
                s
            );
        }
        // Even a revealing masker refuses hash masks, by their shape.
        let siv = masker(StrategyName::AesSiv, &keys);
        let hmac_mask = masker(StrategyName::HmacSha256, &keys).mask(Field::Ip, "10.0.0.1");
        assert_eq!(
            siv.reveal(Field::Ip, &hmac_mask),
            Err(RevealError::OneWay("hmac-sha256"))
        );
    }

    #[test]
    fn hash_masks_refuse_to_reveal() {
        for s in [StrategyName::HmacSha256, StrategyName::Sha256] {
            let m = masker(s, &[("k1", 1)]);
            let mask = m.mask(Field::Ip, "10.0.0.1");
            assert!(matches!(
                m.reveal(Field::Ip, &mask),
                Err(RevealError::OneWay(_))
            ));
        }
    }

    #[test]
    fn rotation_masks_with_the_new_key_and_still_reveals_old_rows() {
        let before = masker(StrategyName::AesSiv, &[("k1", 1)]);
        let old_mask = before.mask(Field::DeviceId, "593-47-5928");
        let after = masker(StrategyName::AesSiv, &[("k2", 2), ("k1", 1)]);
        let new_mask = after.mask(Field::DeviceId, "593-47-5928");
        assert!(new_mask.starts_with("k2:"));
        assert_ne!(old_mask, new_mask, "a new key means new masks");
        assert_eq!(
            after.reveal(Field::DeviceId, &old_mask).unwrap(),
            "593-47-5928"
        );
        assert_eq!(
            after.reveal(Field::DeviceId, &new_mask).unwrap(),
            "593-47-5928"
        );
        let hmac_after = masker(StrategyName::HmacSha256, &[("k2", 2), ("k1", 1)]);
        assert!(hmac_after.mask(Field::Ip, "10.0.0.1").starts_with("k2:"));
    }

    #[test]
    fn sha256_is_plain_compatible_hex_and_needs_no_key() {
        let m = Masker::new(StrategyName::Sha256, None).unwrap();
        assert_eq!(
            m.mask(Field::Ip, "1.2.3.4"),
            "6694f83c9f476da31f5df6bcc520034e7e57d421d247b9d34f49edbfc84a764c"
        );
        assert!(matches!(
            Masker::new(StrategyName::AesSiv, None),
            Err(KeyError::Missing)
        ));
    }

    #[test]
    fn the_sql_rule_for_hmac_masks_is_strategy_of() {
        // The SQL condition is a POSIX regex built from the same constant; check its shape.
        assert_eq!(sql_is_hmac_mask("m"), "(m ~ '^[^:]+:[0-9a-fA-F]{64}$')");
        let upper = format!("k1:{}", "AB".repeat(32));
        assert_eq!(strategy_of(&upper), StrategyName::HmacSha256);
        assert_eq!(
            strategy_of(&format!(":{}", "ab".repeat(32))),
            StrategyName::AesSiv
        );
    }

    #[test]
    fn fingerprints_are_keyed_short_and_absent_without_a_key() {
        let a = masker(StrategyName::AesSiv, &[("k1", 1)]);
        let b = masker(StrategyName::HmacSha256, &[("k1", 2)]);
        let fp = a.fingerprint("value", b"x").unwrap();
        assert_eq!(fp.len(), "k1:".len() + 16);
        assert_ne!(Some(fp), b.fingerprint("value", b"x"));
        assert_ne!(a.fingerprint("value", b"x"), a.fingerprint("user", b"x"));
        assert_eq!(
            Masker::new(StrategyName::Sha256, None)
                .unwrap()
                .fingerprint("value", b"x"),
            None
        );
    }

    proptest! {
        #[test]
        fn distinct_values_give_distinct_masks(a in ".{0,40}", b in ".{0,40}") {
            prop_assume!(a != b);
            for s in KEYED {
                let m = masker(s, &[("k1", 7)]);
                prop_assert_ne!(m.mask(Field::DeviceId, &a), m.mask(Field::DeviceId, &b));
            }
        }

        #[test]
        fn aes_siv_reveals_any_value(v in "\\PC{0,60}") {
            let m = masker(StrategyName::AesSiv, &[("k1", 7)]);
            prop_assert_eq!(m.reveal(Field::DeviceId, &m.mask(Field::DeviceId, &v)).unwrap(), v);
        }
    }
}
