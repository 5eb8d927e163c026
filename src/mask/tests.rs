//! The masking façade: strategies, domains, keys, reveal, fingerprints.

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

proptest! {
    /// Every aes-siv mask has the shape `rekey` and `retire-key` look for in `extra_fields`;
    /// short, spaced or colon-led text a producer may send does not.
    #[test]
    fn every_siv_mask_is_siv_shaped_and_producer_text_is_not(
        value in ".{1,40}",
        ip in any::<[u8; 4]>(),
        id in "[a-z0-9]{1,8}",
        text in "[a-z0-9]{1,8}:[ -~]{0,22}",
    ) {
        let masker = masker(StrategyName::AesSiv, &[(id.as_str(), 5)]);
        prop_assert!(is_siv_shaped(&masker.mask(Field::DeviceId, &value)));
        prop_assert!(is_siv_shaped(&masker.mask_ip(&std::net::IpAddr::from(ip))));
        prop_assert!(!is_siv_shaped(&text));
    }
}

#[test]
fn text_that_is_not_a_siv_mask() {
    for text in [
        "k1:x",
        "k1:",
        ":AAAAAAAAAAAAAAAAAAAAAAAA",
        "k1:AAAAAAAAAAAAAAAAAAAAAAA A",
        "k1",
    ] {
        assert!(!is_siv_shaped(text), "{text}");
    }
}
