//! Network-level pseudonyms of `ip` (`--ip-network-mask`), for grouping logins by network (one
//! office, one carrier NAT) without seeing any address. Filled into `masked_ip_network`.
//!
//! | mode | stored | equal for | leaks | reversible |
//! |---|---|---|---|---|
//! | `hmac` | `<key id>:` + hex HMAC-SHA256 of `10.1.2.0/24` in its own domain | the same /24 (IPv4) or /48 (IPv6), configurable | only "same chosen prefix or not" | no |
//! | `ipcrypt-pfx` | `<key id>:pfx:` + the address encrypted prefix-preservingly (IETF ipcrypt, `ipcrypt-pfx`) | every shared prefix length | the length of the common prefix of any two addresses | by key holders, `reveal` (audited) |
//!
//! Addresses are canonical first (`::ffff:1.2.3.4` is `1.2.3.4`). The hmac domain differs from the
//! `ip` domain and its input carries the prefix length, so a network mask never equals any
//! `masked_ip`. The pfx key is derived from the ring's key with HKDF, never used directly.

use std::net::IpAddr;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use ipcrypt_rs::IpcryptPfx;
use sha2::Sha256;

use super::{KeyError, KeyRing, MaskKey, RevealError};

/// How `masked_ip_network` is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMaskMode {
    /// Not at all (the column stays NULL).
    #[default]
    Off,
    /// Keyed HMAC of the network prefix: groups by one chosen prefix, one-way.
    Hmac,
    /// Prefix-preserving encryption of the whole address: every prefix groups, reversible.
    IpcryptPfx,
}

/// The prefix lengths the `hmac` mode groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkPrefixes {
    /// IPv4 prefix length, 1–32 (default 24).
    pub v4: u8,
    /// IPv6 prefix length, 1–128 (default 48).
    pub v6: u8,
}

impl Default for NetworkPrefixes {
    fn default() -> Self {
        Self { v4: 24, v6: 48 }
    }
}

const PFX_INFO: &[u8] = b"login-etl/v1/ipcrypt-pfx";

/// The canonical network of an address: `10.1.2.0/24`, `2001:db8:1::/48`.
pub fn network_of(ip: &IpAddr, prefixes: NetworkPrefixes) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let len = prefixes.v4.min(32);
            let bits = u32::from(v4) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            format!("{}/{len}", std::net::Ipv4Addr::from(bits))
        }
        IpAddr::V6(v6) => {
            let len = prefixes.v6.min(128);
            let bits = u128::from(v6) & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            format!("{}/{len}", std::net::Ipv6Addr::from(bits))
        }
    }
}

/// The pfx cipher for one key: 32 bytes derived with HKDF; the two halves must differ (the
/// construction needs two independent AES keys, and `ipcrypt-rs` panics otherwise).
fn pfx_cipher(key: &MaskKey) -> Result<IpcryptPfx, KeyError> {
    let mut derived = zeroize::Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, key.bytes())
        .expand(PFX_INFO, derived.as_mut())
        .map_err(|_| KeyError::Invalid("cannot derive the ipcrypt-pfx key".into()))?;
    if derived[..16] == derived[16..] {
        return Err(KeyError::Invalid(
            "the derived ipcrypt-pfx key has equal halves; generate a new key".into(),
        ));
    }
    Ok(IpcryptPfx::new(*derived))
}

enum Cipher {
    Hmac(Hmac<Sha256>),
    // Boxed: the two expanded AES key schedules are ~700 bytes.
    Pfx(Box<IpcryptPfx>),
}

/// Makes network pseudonyms with the ring's active key.
pub struct NetworkMasker {
    key_id: String,
    prefixes: NetworkPrefixes,
    cipher: Cipher,
}

impl std::fmt::Debug for NetworkMasker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.cipher {
            Cipher::Hmac(_) => "hmac",
            Cipher::Pfx(_) => "ipcrypt-pfx",
        };
        write!(f, "NetworkMasker({mode}, key {}, <redacted>)", self.key_id)
    }
}

impl NetworkMasker {
    /// `None` for [`NetworkMaskMode::Off`].
    pub fn new(
        mode: NetworkMaskMode,
        prefixes: NetworkPrefixes,
        keys: &KeyRing,
    ) -> Result<Option<Self>, KeyError> {
        let (key_id, key) = keys.active();
        let cipher = match mode {
            NetworkMaskMode::Off => return Ok(None),
            NetworkMaskMode::Hmac => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key.bytes())
                    .expect("HMAC accepts any key length");
                mac.update(super::Field::IpNetwork.domain());
                mac.update(&[0]);
                Cipher::Hmac(mac)
            }
            NetworkMaskMode::IpcryptPfx => Cipher::Pfx(Box::new(pfx_cipher(key)?)),
        };
        Ok(Some(Self {
            key_id: key_id.to_string(),
            prefixes,
            cipher,
        }))
    }

    /// The pseudonym of `ip`'s network (hmac) or of `ip` itself, prefix-preserving (pfx).
    pub fn mask(&self, ip: &IpAddr) -> String {
        match &self.cipher {
            Cipher::Hmac(keyed) => {
                let mut mac = keyed.clone();
                mac.update(network_of(ip, self.prefixes).as_bytes());
                format!(
                    "{}:{}",
                    self.key_id,
                    hex::encode(mac.finalize().into_bytes())
                )
            }
            Cipher::Pfx(pfx) => {
                format!(
                    "{}:pfx:{}",
                    self.key_id,
                    pfx.encrypt_ipaddr(ip.to_canonical())
                )
            }
        }
    }
}

/// Whether a stored network mask is an `ipcrypt-pfx` one (and so can be revealed).
pub fn is_pfx(mask: &str) -> bool {
    mask.split_once(':')
        .is_some_and(|(_, rest)| rest.starts_with("pfx:"))
}

/// The address behind an `ipcrypt-pfx` mask, with the key its id names.
pub fn reveal_pfx(keys: &KeyRing, mask: &str) -> Result<String, RevealError> {
    let (key_id, rest) = mask.split_once(':').ok_or(RevealError::Malformed)?;
    let Some(encrypted) = rest.strip_prefix("pfx:") else {
        return Err(RevealError::OneWay("hmac network"));
    };
    let encrypted: IpAddr = encrypted.parse().map_err(|_| RevealError::Malformed)?;
    let key = keys
        .all()
        .find_map(|(id, key)| (id == key_id).then_some(key))
        .ok_or_else(|| RevealError::UnknownKey(key_id.to_string()))?;
    let pfx = pfx_cipher(key).map_err(|_| RevealError::Tampered)?;
    Ok(pfx.decrypt_ipaddr(encrypted).to_canonical().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ipcrypt-pfx ciphers (two aes 0.9 `Aes128`) zero their round keys on drop: this does
    /// not compile without aes 0.9's `zeroize` feature (Cargo.toml's `aes09`).
    #[test]
    fn the_ipcrypt_round_keys_are_zeroed_on_drop() {
        fn zeroed_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        zeroed_on_drop::<aes09::Aes128>();
    }

    fn ring(byte: u8) -> KeyRing {
        KeyRing::parse(&format!("k1:{}", hex::encode([byte; 32]))).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// draft-denis-ipcrypt (IETF), ipcrypt-pfx test vectors, checked against the crate directly.
    #[test]
    fn ipcrypt_pfx_matches_the_draft_test_vectors() {
        let vectors = [
            (
                "0123456789abcdeffedcba98765432101032547698badcfeefcdab8967452301",
                "0.0.0.0",
                "151.82.155.134",
            ),
            (
                "0123456789abcdeffedcba98765432101032547698badcfeefcdab8967452301",
                "255.255.255.255",
                "94.185.169.89",
            ),
            (
                "0123456789abcdeffedcba98765432101032547698badcfeefcdab8967452301",
                "192.0.2.1",
                "100.115.72.131",
            ),
            (
                "0123456789abcdeffedcba98765432101032547698badcfeefcdab8967452301",
                "2001:db8::1",
                "c180:5dd4:2587:3524:30ab:fa65:6ab6:f88",
            ),
            (
                "2b7e151628aed2a6abf7158809cf4f3ca9f5ba40db214c3798f2e1c23456789a",
                "10.0.0.47",
                "19.214.210.244",
            ),
            (
                "2b7e151628aed2a6abf7158809cf4f3ca9f5ba40db214c3798f2e1c23456789a",
                "10.0.0.129",
                "19.214.210.80",
            ),
            (
                "2b7e151628aed2a6abf7158809cf4f3ca9f5ba40db214c3798f2e1c23456789a",
                "10.0.0.234",
                "19.214.210.30",
            ),
            (
                "2b7e151628aed2a6abf7158809cf4f3ca9f5ba40db214c3798f2e1c23456789a",
                "172.16.5.193",
                "210.78.229.136",
            ),
            (
                "2b7e151628aed2a6abf7158809cf4f3ca9f5ba40db214c3798f2e1c23456789a",
                "172.16.97.42",
                "210.78.179.241",
            ),
            (
                "2b7e151628aed2a6abf7158809cf4f3ca9f5ba40db214c3798f2e1c23456789a",
                "172.16.248.177",
                "210.78.121.215",
            ),
        ];
        for (key, input, expected) in vectors {
            let key: [u8; 32] = hex::decode(key).unwrap().try_into().unwrap();
            let pfx = IpcryptPfx::new(key);
            assert_eq!(pfx.encrypt_ipaddr(ip(input)), ip(expected), "{input}");
            assert_eq!(pfx.decrypt_ipaddr(ip(expected)), ip(input), "{expected}");
        }
    }

    #[test]
    fn networks_are_canonical_and_prefix_cut() {
        let p = NetworkPrefixes::default();
        assert_eq!(network_of(&ip("10.1.2.3"), p), "10.1.2.0/24");
        assert_eq!(network_of(&ip("::ffff:10.1.2.3"), p), "10.1.2.0/24");
        assert_eq!(network_of(&ip("2001:db8:1:2::5"), p), "2001:db8:1::/48");
        let wide = NetworkPrefixes { v4: 16, v6: 32 };
        assert_eq!(network_of(&ip("10.1.2.3"), wide), "10.1.0.0/16");
        assert_eq!(network_of(&ip("2001:db8:1:2::5"), wide), "2001:db8::/32");
    }

    #[test]
    fn hmac_network_masks_group_by_prefix_and_never_equal_an_ip_mask() {
        let keys = ring(7);
        let net = NetworkMasker::new(NetworkMaskMode::Hmac, NetworkPrefixes::default(), &keys)
            .unwrap()
            .unwrap();
        let same = [ip("10.1.2.3"), ip("10.1.2.250"), ip("::ffff:10.1.2.9")];
        assert!(same.iter().all(|a| net.mask(a) == net.mask(&same[0])));
        assert_ne!(net.mask(&ip("10.1.2.3")), net.mask(&ip("10.1.3.3")));
        assert_eq!(
            net.mask(&ip("2001:db8:1:2::1")),
            net.mask(&ip("2001:db8:1:ffff::9"))
        );
        assert_ne!(
            net.mask(&ip("2001:db8:1::1")),
            net.mask(&ip("2001:db8:2::1"))
        );
        let masker = super::super::Masker::hmac(&keys);
        for a in same {
            assert_ne!(net.mask(&a), masker.mask_ip(&a));
        }
        assert!(!is_pfx(&net.mask(&same[0])));
        assert_eq!(
            reveal_pfx(&keys, &net.mask(&same[0])),
            Err(RevealError::OneWay("hmac network"))
        );
    }

    #[test]
    fn pfx_masks_share_prefixes_and_reveal_with_the_key() {
        let keys = ring(9);
        let net = NetworkMasker::new(
            NetworkMaskMode::IpcryptPfx,
            NetworkPrefixes::default(),
            &keys,
        )
        .unwrap()
        .unwrap();
        let a = net.mask(&ip("10.1.2.3"));
        let b = net.mask(&ip("::ffff:10.1.2.77"));
        let prefix = |m: &str| m.rsplit_once('.').unwrap().0.to_string();
        assert!(a.starts_with("k1:pfx:") && is_pfx(&a));
        assert_eq!(prefix(&a), prefix(&b), "same /24, same first three octets");
        assert_ne!(prefix(&a), prefix(&net.mask(&ip("10.1.3.3"))));
        assert_eq!(reveal_pfx(&keys, &a).unwrap(), "10.1.2.3");
        assert_eq!(reveal_pfx(&keys, &b).unwrap(), "10.1.2.77");
        // Not authenticated: another key's material decrypts to some other address.
        assert_ne!(reveal_pfx(&ring(3), &a).unwrap(), "10.1.2.3");
        let other_id = KeyRing::parse(&format!("k2:{}", hex::encode([9u8; 32]))).unwrap();
        assert_eq!(
            reveal_pfx(&other_id, &a),
            Err(RevealError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn off_makes_no_masker() {
        let none = NetworkMasker::new(NetworkMaskMode::Off, NetworkPrefixes::default(), &ring(1));
        assert!(none.unwrap().is_none());
    }
}
