//! Re-encryption of reversible masks to another key of the ring: aes-siv `ip` / `device_id`
//! masks and ipcrypt-pfx network pseudonyms. The raw value exists only inside [`Rekeyer::reencrypt`].
//! hmac and sha256 masks are one-way and are refused.

use std::net::IpAddr;

use super::{
    network, Field, KeyError, KeyRing, Masker, NetworkMaskMode, NetworkMasker, RevealError,
    StrategyName,
};

/// Decrypts with any key of the ring, encrypts with the target key.
#[derive(Debug)]
pub struct Rekeyer {
    keys: KeyRing,
    reveal: Masker,
    target: Masker,
    target_pfx: NetworkMasker,
}

impl Rekeyer {
    /// Re-encrypt to `to`, which must be in `keys`.
    pub fn new(keys: KeyRing, to: &str) -> Result<Self, KeyError> {
        let target_ring = keys.with_active(to)?;
        let target_pfx = NetworkMasker::new(
            NetworkMaskMode::IpcryptPfx,
            super::NetworkPrefixes::default(),
            &target_ring,
        )?
        .expect("ipcrypt-pfx is not off");
        Ok(Self {
            reveal: Masker::new(StrategyName::AesSiv, Some(&keys))?,
            target: Masker::new(StrategyName::AesSiv, Some(&target_ring))?,
            target_pfx,
            keys,
        })
    }

    /// The key ring it decrypts with.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The same value as `mask`, masked under the target key.
    pub fn reencrypt(&self, field: Field, mask: &str) -> Result<String, RevealError> {
        match field {
            Field::IpNetwork => {
                let raw = network::reveal_pfx(&self.keys, mask)?;
                let ip: IpAddr = raw.parse().map_err(|_| RevealError::Malformed)?;
                Ok(self.target_pfx.mask(&ip))
            }
            _ => Ok(self.target.mask(field, &self.reveal.reveal(field, mask)?)),
        }
    }
}

impl Rekeyer {
    /// Re-encrypt, in place, every aes-siv mask in `value` (a row's `extra_fields`, scrubbed like a
    /// quarantine body: addresses and devices recurring there are row masks) whose key id `is_old`
    /// accepts; keyed fingerprints (`#str(n) <id>:…`) and hmac masks are one-way and stay, and so
    /// does a producer's kept text not shaped as a mask ([`super::is_siv_shaped`]). A mask
    /// opens as an `ip` or a `device_id` mask (their domains are apart). Returns how many changed.
    pub fn reencrypt_json(
        &self,
        value: &mut serde_json::Value,
        is_old: &dyn Fn(&str) -> bool,
    ) -> Result<usize, RevealError> {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                let old = s.split_once(':').is_some_and(|(id, _)| is_old(id))
                    && super::strategy_of(s) == StrategyName::AesSiv
                    && super::is_siv_shaped(s);
                if !old {
                    return Ok(0);
                }
                *s = (self.reencrypt(Field::Ip, s))
                    .or_else(|_| self.reencrypt(Field::DeviceId, s))?;
                Ok(1)
            }
            Value::Array(items) => items
                .iter_mut()
                .try_fold(0, |n, v| Ok(n + self.reencrypt_json(v, is_old)?)),
            Value::Object(map) => map
                .values_mut()
                .try_fold(0, |n, v| Ok(n + self.reencrypt_json(v, is_old)?)),
            _ => Ok(0),
        }
    }
}

/// Every form a stored mask takes under the keys of a ring, itself included: what `erase`
/// removes from the reveal audit, which keeps masks written before a `rekey` moved the rows to
/// another key (and which `reveal --value` still opens while that key is in the ring). One-way
/// masks have one form.
#[derive(Debug)]
pub struct Generations {
    rekeyers: Vec<Rekeyer>,
}

impl Generations {
    /// Forms under every key of `keys`.
    pub fn new(keys: &KeyRing) -> Result<Self, KeyError> {
        let ids: Vec<String> = keys.all().map(|(id, _)| id.to_string()).collect();
        let rekeyers = (ids.iter())
            .map(|id| Rekeyer::new(keys.clone(), id))
            .collect::<Result<_, _>>()?;
        Ok(Self { rekeyers })
    }

    /// `mask` and, if it opens under the ring, the same value masked under every key (its field
    /// is whichever authenticates it: the fields' domains are apart).
    pub fn of(&self, mask: &str) -> Vec<String> {
        let mut forms = vec![mask.to_string()];
        for field in [Field::Ip, Field::DeviceId, Field::IpNetwork] {
            for rekeyer in &self.rekeyers {
                if let Ok(form) = rekeyer.reencrypt(field, mask) {
                    forms.push(form);
                }
            }
        }
        forms.sort();
        forms.dedup();
        forms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reencrypted_masks_carry_the_new_key_and_reveal_to_the_same_value() {
        let ring = KeyRing::parse(&format!(
            "k2:{},k1:{}",
            hex::encode([2u8; 32]),
            hex::encode([1u8; 32])
        ))
        .unwrap();
        let old =
            Masker::new(StrategyName::AesSiv, Some(&ring.with_active("k1").unwrap())).unwrap();
        let rekeyer = Rekeyer::new(ring.clone(), "k2").unwrap();
        let moved = rekeyer
            .reencrypt(Field::Ip, &old.mask(Field::Ip, "10.1.2.3"))
            .unwrap();
        assert!(moved.starts_with("k2:"));
        let reveal = Masker::new(StrategyName::AesSiv, Some(&ring)).unwrap();
        assert_eq!(reveal.reveal(Field::Ip, &moved).unwrap(), "10.1.2.3");
        let hmac = Masker::hmac(&ring).mask(Field::Ip, "10.1.2.3");
        assert!(
            rekeyer.reencrypt(Field::Ip, &hmac).is_err(),
            "one-way masks are refused"
        );
    }
}
