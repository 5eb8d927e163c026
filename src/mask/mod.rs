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

mod erasure;
mod hmac;
mod key_fingerprint;
pub mod keys;
pub(crate) mod kms;
pub mod network;
mod period_key;
mod rekey;
mod row;
mod scrub;
mod sha256;
mod siv;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use erasure::{
    strip_subject, subject_strings, user_id_forms, ErasureFingerprints, Stripped, ERASED,
};
pub use key_fingerprint::replaced_keys;
pub(crate) use keys::MaskKey;
pub use keys::{KeyError, KeyRing};
pub use network::{NetworkMaskMode, NetworkMasker, NetworkPrefixes};
pub use period_key::{
    new_period_key, period_end, period_ended_by, period_key_id, period_masker, period_of_mask,
    period_start, rewrap_period_key, WrappedPeriodKey,
};
pub use rekey::{Generations, Rekeyer};
pub use row::{PeriodKeyUse, PeriodKeys, RowPolicy, StoredRow};
pub use scrub::{contains_ip, is_plain_name, ScrubbedBody, USER_FINGERPRINT};

use crate::validate::LoginEvent;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrategyName {
    /// Keyed HMAC-SHA256: deterministic, one-way (default).
    HmacSha256,
    /// AES-256-SIV: deterministic, reversible by key holders.
    AesSiv,
    /// Unkeyed SHA-256: only for tables already built that way; IPv4 masks are brute-forceable.
    Sha256,
}

/// A login event whose PII has been replaced by masks; the only shape that reaches the sink.
/// Without a policy every column but `locale`, `app_version`, `masked_ip_network` and `period` is
/// filled; a policy (`run --policy`) may leave others empty (`drop`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedLogin {
    /// As received, or its pseudonym under a policy.
    pub user_id: String,
    /// As received.
    pub device_type: Option<String>,
    /// Mask of the canonical address.
    pub masked_ip: Option<String>,
    /// Mask of the trimmed device id.
    pub masked_device_id: Option<String>,
    /// As received.
    pub locale: Option<String>,
    /// As received.
    pub app_version: Option<String>,
    /// Network pseudonym (`--ip-network-mask`), `None` when off.
    pub masked_ip_network: Option<String>,
    /// The period its time-scoped pseudonyms belong to (`2026-12`), under a policy that scopes.
    pub period: Option<String>,
    /// What the `sent_at` column holds when a policy truncates it (`None`: when it was sent).
    /// Erasures and the ledger go by the untruncated time the outcome carries.
    pub stored_sent_at: Option<DateTime<Utc>>,
    /// Whether its revealable values are sealed under its period's random key (a scoped
    /// `aes-siv`): such a row commits only while that key is not shredded.
    pub period_key: PeriodKeyUse,
    /// The user id as it arrived, when `user_id` holds a pseudonym: what erasures are looked up
    /// by. Never written.
    pub subject: Option<String>,
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

/// Shortest payload of an aes-siv mask: base64url (unpadded) of a 16-byte tag and at least one
/// byte of value.
const SIV_MIN_PAYLOAD: usize = 23;

/// Whether `text` has the exact shape of an aes-siv mask under key `id`: `<id>:` and unpadded
/// base64url of at least [`SIV_MIN_PAYLOAD`] characters. Where producers' text sits beside masks
/// (`extra_fields`), only such a string is taken for a mask: a kept value such as `k1:x` is the
/// producer's, and neither blocks `rekey` nor keeps a key in use for `retire-key`.
pub fn is_siv_shaped(text: &str) -> bool {
    let Some((id, payload)) = text.split_once(':') else {
        return false;
    };
    let url_safe = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    !id.is_empty()
        && payload.len() >= SIV_MIN_PAYLOAD
        && payload.len() % 4 != 1
        && payload.bytes().all(url_safe)
}

/// The same rule as [`is_siv_shaped`], in SQL, for a text expression.
pub fn sql_is_siv_shaped(text: &str) -> String {
    format!(
        "({text} ~ '^[^:]+:[A-Za-z0-9_-]{{{SIV_MIN_PAYLOAD},}}$' \
         AND length(split_part({text}, ':', 2)) % 4 <> 1)"
    )
}

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
    /// What makes rows under `run --policy`.
    policy: Option<Arc<dyn RowPolicy>>,
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
            policy: None,
        })
    }

    /// The default strategy with these keys.
    pub fn hmac(keys: &KeyRing) -> Self {
        Self {
            strategy: Arc::new(hmac::HmacStrategy::new(keys)),
            network: None,
            fingerprints: Some(Arc::new(hmac::Fingerprinter::new(keys))),
            policy: None,
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
            masked_ip: Some(self.mask_ip(&event.ip)),
            masked_device_id: Some(self.mask(Field::DeviceId, event.device_id.trim())),
            user_id: event.user_id,
            device_type: Some(event.device_type),
            locale: event.locale,
            app_version: event.app_version,
            period: None,
            stored_sent_at: None,
            period_key: PeriodKeyUse::None,
            subject: None,
        }
    }

    /// Store rows as `policy` says (`run --policy`) instead of by this masker's strategy; the
    /// masker still scrubs and fingerprints quarantined bodies.
    pub fn with_policy(mut self, policy: Arc<dyn RowPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The row a validated event sent at `sent_at` becomes: under the policy if there is one,
    /// else masked by the strategy with `create_date` the day of `sent_at`.
    pub fn mask_row(&self, event: LoginEvent, sent_at: DateTime<Utc>) -> StoredRow {
        match &self.policy {
            Some(policy) => policy.row(event, sent_at),
            None => StoredRow {
                login: self.mask_event(event),
                create_date: sent_at.date_naive(),
            },
        }
    }

    /// Fresh wrapped keys for the periods rows came out [`PeriodKeyUse::Missing`] for.
    pub fn new_period_keys(&self, periods: &[String]) -> Vec<(String, WrappedPeriodKey)> {
        (self.policy.as_ref()).map_or_else(Vec::new, |p| p.new_period_keys(periods))
    }

    /// Seal rows of these periods under these keys (as the database holds them) from now on.
    pub fn use_period_keys(&self, keys: &PeriodKeys) -> Result<(), KeyError> {
        (self.policy.as_ref()).map_or(Ok(()), |p| p.use_period_keys(keys))
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
mod tests;
#[cfg(test)]
mod vectors;
