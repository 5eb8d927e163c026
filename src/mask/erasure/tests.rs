//! Generated bodies of several users' logins, in every shape a message can take, scrubbed as
//! quarantine stores them: every user is recorded, and erasing one takes out exactly their logins.

use super::*;
use crate::mask::{Field, Masker};
use proptest::prelude::*;

fn keys() -> KeyRing {
    KeyRing::parse(&"11".repeat(32)).unwrap()
}

/// One user: their id (kept, or shaped so that the scrubber fingerprints it) and raw values.
#[derive(Debug, Clone)]
struct User {
    id: String,
    ip: String,
    device: String,
}

fn user(i: usize, kind: u8, tag: &str) -> User {
    let id = match kind {
        0 => format!("subj-{tag}-{i}x"),
        1 => format!("198.51.100.{i}"), // shaped like an address
        2 => format!("subj{}{tag}{i}", "q".repeat(130)), // too long to keep
        _ => format!("{}", 700 + i),    // a number, kept as one
    };
    User {
        id,
        ip: format!("203.0.113.{}", 10 + i),
        device: format!("dev-{tag}-{i}-z"),
    }
}

/// How producers spell the user id field; every spelling is found (a login without `user_id`
/// is quarantined whole, and erasure must still find it).
const ID_NAMES: [&str; 5] = ["user_id", "userId", "UserID", "user-id", "USER_ID"];

fn login(u: &User, valid: bool, name: &str) -> serde_json::Value {
    let mut login =
        serde_json::json!({name: u.id, "ip": u.ip, "device_id": u.device, "locale": "RU"});
    if u.id.starts_with('7') {
        login[name] = serde_json::json!(u.id.parse::<u32>().unwrap());
    }
    if valid {
        login["device_type"] = "ios".into();
    }
    login
}

/// A message of these logins in one of the shapes the pipeline quarantines whole.
fn body(logins: Vec<serde_json::Value>, shape: u8) -> String {
    let array = serde_json::Value::Array(logins);
    match shape {
        0 => array.to_string(),
        1 => serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": array.to_string()})
            .to_string(),
        2 => serde_json::json!({"detail-type": "login", "detail": {"logins": array}}).to_string(),
        _ => {
            let items = array.as_array().unwrap();
            let (a, b) = items.split_at(items.len() / 2);
            serde_json::json!([a, b]).to_string()
        }
    }
}

/// The objects of `value`, at any depth, whose own `user_id` is one of `forms`, as text.
fn owned(value: &serde_json::Value, forms: &[String], out: &mut Vec<String>) {
    if is_subjects(value, forms) {
        out.push(value.to_string());
    }
    match value {
        serde_json::Value::Array(items) => items.iter().for_each(|v| owned(v, forms, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| owned(v, forms, out)),
        _ => {}
    }
}

fn owned_by(json: &str, forms: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    owned(&serde_json::from_str(json).unwrap(), forms, &mut out);
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_user_is_recorded_and_erasing_one_takes_out_only_theirs(
        kinds in proptest::collection::vec(0u8..4, 2..6),
        picks in proptest::collection::vec((0usize..100, any::<bool>(), 0usize..5), 2..12),
        shape in 0u8..4,
        tag in "[a-z]{6}",
    ) {
        let keys = keys();
        let masker = Masker::hmac(&keys);
        let users: Vec<User> = kinds.iter().enumerate().map(|(i, k)| user(i, *k, &tag)).collect();
        let logins: Vec<(usize, serde_json::Value)> = picks
            .iter()
            .map(|(p, valid, name)| {
                (p % users.len(), login(&users[p % users.len()], *valid, ID_NAMES[*name]))
            })
            .collect();
        let present: Vec<usize> = {
            let mut p: Vec<usize> = logins.iter().map(|(u, _)| *u).collect();
            p.sort();
            p.dedup();
            p
        };
        let stored = masker.scrub_body(&body(logins.iter().map(|(_, l)| l.clone()).collect(), shape));
        for &u in &present {
            let forms = user_id_forms(&keys, &users[u].id);
            prop_assert!(
                stored.user_ids.iter().any(|id| forms.contains(id)),
                "user {} not among {:?}", users[u].id, stored.user_ids
            );
        }
        for &u in &present {
            let forms = user_id_forms(&keys, &users[u].id);
            let Stripped::Kept(after) = strip_subject(&stored.json, &forms) else {
                return Err(TestCaseError::fail("a body of several logins is kept"));
            };
            prop_assert!(owned_by(&after, &forms).is_empty());
            let ip_mask = masker.mask_ip(&users[u].ip.parse().unwrap());
            let device_mask = masker.mask(Field::DeviceId, &users[u].device);
            prop_assert!(!after.contains(&ip_mask) && !after.contains(&device_mask));
            let theirs = logins.iter().filter(|(o, _)| *o == u).count();
            prop_assert_eq!(after.matches(&format!("\"{ERASED}\"")).count(), theirs);
            for &v in present.iter().filter(|&&v| v != u) {
                let others = user_id_forms(&keys, &users[v].id);
                prop_assert_eq!(owned_by(&after, &others), owned_by(&stored.json, &others));
            }
        }
    }
}

#[test]
fn a_body_that_is_the_subjects_or_unreadable_goes_whole() {
    let keys = keys();
    let masker = Masker::hmac(&keys);
    let forms = user_id_forms(&keys, "alice");
    let one = masker.scrub_body(r#"{"user_id":"alice","ip":"203.0.113.9"}"#);
    assert_eq!(strip_subject(&one.json, &forms), Stripped::Whole);
    assert_eq!(strip_subject("{not json", &forms), Stripped::Whole);
    let other = masker.scrub_body(r#"{"user_id":"bob","ip":"203.0.113.9"}"#);
    assert_eq!(
        strip_subject(&other.json, &forms),
        Stripped::Kept(other.json)
    );
}

proptest! {
    /// Whatever form stored data holds a user id in (as it is, `#user`, `#str(n)`, `#num(n)`),
    /// the writer's lookups for it meet what an erasure of that id records, under a ring of one
    /// or two keys; another id's never do.
    #[test]
    fn every_stored_form_of_an_id_finds_its_erasure_record(
        id in "[ -~]{1,40}",
        other in "[ -~]{1,40}",
        two_keys in any::<bool>(),
    ) {
        prop_assume!(id != other);
        let text = if two_keys {
            format!("k2:{},k1:{}", "22".repeat(32), "11".repeat(32))
        } else {
            format!("k1:{}", "11".repeat(32))
        };
        let ring = KeyRing::parse(&text).unwrap();
        let check = ErasureFingerprints::new(&ring);
        let recorded = check.of(&id);
        for form in user_id_forms(&ring, &id) {
            let lookups = check.lookups(&form);
            prop_assert!(lookups.iter().any(|l| recorded.contains(l)), "form {form:?}");
            let theirs = check.of(&other);
            prop_assert!(!lookups.iter().any(|l| theirs.contains(l)), "form {form:?}");
        }
    }
}

#[test]
fn the_subjects_strings_are_those_of_their_logins_only() {
    let forms = vec!["u1".to_string()];
    let body = r#"[{"user_id":"u1","ip":"k1:aaa"},{"user_id":"u2","ip":"k1:bbb"}]"#;
    let sorted = |body: &str| {
        let mut found = subject_strings(body, &forms);
        found.sort();
        found
    };
    assert_eq!(sorted(body), ["k1:aaa", "u1"]);
    let whole = r#"{"user_id":"u1","nested":{"device_id":"k1:ccc"}}"#;
    assert_eq!(sorted(whole), ["k1:ccc", "u1"]);
    assert!(subject_strings("not json", &forms).is_empty());
}
