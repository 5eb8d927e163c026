//! Fixed vectors: every strategy and key form against masks computed outside this code
//! (`tests/vectors/masks.py`, Python's `hmac`/`hashlib` and `cryptography`'s AES-SIV and HKDF, from
//! the constructions the docs state). A change to a domain prefix, an HKDF label, a key parse or
//! an encoding fails here, instead of silently breaking duplicate detection, joins, reveal and
//! erase against every stored row.

use super::*;

const VECTORS: &str = include_str!("../../tests/vectors/masks.txt");

/// The two key forms: a bare 32-byte hex key (read as `k1`) and an id'd 64-byte one.
fn ring(form: &str) -> KeyRing {
    let text = match form {
        "bare32" => hex::encode((0u8..32).collect::<Vec<_>>()),
        "id64" => format!("prod-2026:{}", "a5".repeat(64)),
        other => panic!("unknown key form {other}"),
    };
    KeyRing::parse(&text).unwrap()
}

fn field(name: &str) -> Field {
    match name {
        "ip" => Field::Ip,
        "device_id" => Field::DeviceId,
        other => panic!("unknown field {other}"),
    }
}

#[test]
fn every_strategy_and_key_form_gives_the_independently_computed_mask() {
    let mut checked = 0;
    for line in VECTORS.lines().filter(|l| !l.starts_with('#')) {
        let [strategy, form, name, value, expected] = line.split(' ').collect::<Vec<_>>()[..]
        else {
            panic!("malformed vector line {line:?}")
        };
        let got = match strategy {
            "hmac" => Masker::new(StrategyName::HmacSha256, Some(&ring(form)))
                .unwrap()
                .mask(field(name), value),
            "siv" => {
                let masker = Masker::new(StrategyName::AesSiv, Some(&ring(form))).unwrap();
                assert_eq!(masker.reveal(field(name), expected).unwrap(), value);
                masker.mask(field(name), value)
            }
            "sha256" => Masker::new(StrategyName::Sha256, None)
                .unwrap()
                .mask(field(name), value),
            "fingerprint" => user_fingerprints(&ring(form), value).remove(0),
            other => panic!("unknown strategy {other}"),
        };
        assert_eq!(got, expected, "{strategy} {form} {name} {value}");
        checked += 1;
    }
    assert_eq!(checked, 22, "every vector read");
}
