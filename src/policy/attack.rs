//! The attack `report privacy` runs against the live table: hash every value of a stated space
//! without the key (unkeyed SHA-256, as the compatibility strategy stores it) and look for the
//! results among the stored masks, whole and after their key id. Keyed masks must give nothing;
//! `sha256` masks give every value of the space that is in the table, which is why it is only for
//! tables already built that way.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::mask::strategy_of;

/// A space of candidate values an attacker without the key can enumerate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Space {
    /// Every IPv4 address of a network (at most a /8's 2^24 addresses).
    Ipv4 {
        /// The network's first address.
        base: Ipv4Addr,
        /// Its prefix length.
        prefix: u8,
    },
    /// Every text a pattern makes, each `#` a digit (at most 7 of them).
    Digits(String),
}

/// What an attack found in one column, by the strategy that made the masks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `hmac-sha256`, `aes-siv` or `sha256`.
    pub strategy: &'static str,
    /// Distinct masks of that strategy attacked.
    pub masks: usize,
    /// How many of them the attack turned back into a value.
    pub recovered: usize,
}

impl Space {
    /// `10.0.0.0/16` or a pattern such as `593-47-####`; one line saying why not otherwise.
    pub fn parse_ipv4(text: &str) -> Result<Space, String> {
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not an IPv4 network such as 10.0.0.0/16"))?;
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| format!("`{address}` is not an IPv4 address"))?;
        let prefix: u8 = match prefix.parse() {
            Ok(p) if (8..=32).contains(&p) => p,
            _ => {
                return Err(format!(
                    "the prefix `/{prefix}` must be from /8 to /32 (a /8 is 16.8 M candidates)"
                ))
            }
        };
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Ok(Space::Ipv4 {
            base: Ipv4Addr::from(u32::from(address) & mask),
            prefix,
        })
    }

    /// A device-id pattern, each `#` a digit.
    pub fn parse_digits(pattern: &str) -> Result<Space, String> {
        match pattern.matches('#').count() {
            1..=7 => Ok(Space::Digits(pattern.to_string())),
            _ => Err(format!(
                "`{pattern}` must have from 1 to 7 `#` (each a digit 0-9)"
            )),
        }
    }

    /// How many candidates the space holds.
    pub fn size(&self) -> u64 {
        match self {
            Space::Ipv4 { prefix, .. } => 1u64 << (32 - u32::from(*prefix)),
            Space::Digits(pattern) => 10u64.pow(pattern.matches('#').count() as u32),
        }
    }

    fn candidate(&self, n: u64) -> String {
        match self {
            Space::Ipv4 { base, .. } => Ipv4Addr::from(u32::from(*base) + n as u32).to_string(),
            Space::Digits(pattern) => {
                let digits = pattern.matches('#').count();
                let mut number = format!("{n:0digits$}").into_bytes().into_iter();
                pattern
                    .chars()
                    .map(|c| {
                        if c == '#' {
                            char::from(number.next().unwrap_or(b'0'))
                        } else {
                            c
                        }
                    })
                    .collect()
            }
        }
    }

    /// Hash every candidate and count the masks found, per strategy.
    pub fn attack<'m>(&self, masks: impl IntoIterator<Item = &'m str>) -> Vec<Finding> {
        let mut by_strategy: Vec<(&'static str, HashSet<String>)> = Vec::new();
        for mask in masks {
            let strategy = strategy_of(mask).as_str();
            // Without the key, an attacker can only compare hashes with the part after the id.
            let payload = mask
                .split_once(':')
                .map_or(mask, |(_, p)| p)
                .to_ascii_lowercase();
            match by_strategy.iter_mut().find(|(s, _)| *s == strategy) {
                Some((_, set)) => {
                    set.insert(payload);
                }
                None => by_strategy.push((strategy, HashSet::from([payload]))),
            }
        }
        let mut found: Vec<usize> = vec![0; by_strategy.len()];
        for n in 0..self.size() {
            let hash = hex::encode(Sha256::digest(self.candidate(n).as_bytes()));
            for (i, (_, set)) in by_strategy.iter().enumerate() {
                found[i] += usize::from(set.contains(&hash));
            }
        }
        by_strategy
            .into_iter()
            .zip(found)
            .map(|((strategy, set), recovered)| Finding {
                strategy,
                masks: set.len(),
                recovered,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{Field, KeyRing, Masker, StrategyName};

    #[test]
    fn unkeyed_masks_fall_and_keyed_ones_do_not() {
        let keys = KeyRing::parse(&format!("k1:{}", "ab".repeat(32))).unwrap();
        let addresses: Vec<String> = (0..50).map(|i| format!("10.42.{i}.{}", 200 - i)).collect();
        let space = Space::parse_ipv4("10.42.7.9/16").unwrap();
        assert_eq!(
            (space.size(), space.candidate(0)),
            (65_536, "10.42.0.0".to_string())
        );
        for (strategy, expected) in [
            (StrategyName::Sha256, 50),
            (StrategyName::HmacSha256, 0),
            (StrategyName::AesSiv, 0),
        ] {
            let masker = Masker::new(strategy, Some(&keys)).unwrap();
            let masks: Vec<String> = addresses
                .iter()
                .map(|a| masker.mask(Field::Ip, a))
                .collect();
            let found = space.attack(masks.iter().map(String::as_str));
            assert_eq!(
                found,
                vec![Finding {
                    strategy: strategy.as_str(),
                    masks: 50,
                    recovered: expected
                }]
            );
        }
        let devices = Space::parse_digits("593-47-59##").unwrap();
        assert_eq!(
            (devices.size(), devices.candidate(7)),
            (100, "593-47-5907".to_string())
        );
        let sha = Masker::new(StrategyName::Sha256, None)
            .unwrap()
            .mask(Field::DeviceId, "593-47-5928");
        assert_eq!(devices.attack([sha.as_str()])[0].recovered, 1);
        assert!(Space::parse_ipv4("10.0.0.0/4").is_err() && Space::parse_digits("abc").is_err());
    }
}
