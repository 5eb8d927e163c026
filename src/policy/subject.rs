//! A data subject under `user_id = "pseudonym"`: the pseudonym a row stores in place of the id,
//! and every pseudonym the id may have been stored as (each key of the ring, all time and each
//! period), so that `erase` and `reveal` keep finding a subject's rows by the id they are given.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::period;
use crate::mask::{KeyError, KeyRing, MaskKey};

/// Domain of `user_id` pseudonyms, apart from every other field's.
const USER_ID_DOMAIN: &[u8] = b"login-etl/v1/user_id";

/// `<key id>:<hex HMAC-SHA256>` of `user_id` under one key.
pub(super) fn pseudonym(key_id: &str, key: &MaskKey, user_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.bytes()).expect("HMAC accepts any key length");
    mac.update(USER_ID_DOMAIN);
    mac.update(&[0]);
    mac.update(user_id.as_bytes());
    format!("{key_id}:{}", hex::encode(mac.finalize().into_bytes()))
}

/// Every pseudonym `user_id` may be stored as: under each key of `keys`, for all time and in
/// each of `periods` (those the table holds).
pub fn user_id_pseudonyms(
    keys: &KeyRing,
    user_id: &str,
    periods: &[String],
) -> Result<Vec<String>, KeyError> {
    let mut rings = vec![keys.clone()];
    for p in periods {
        rings.push(period::ring_for(keys, p)?);
    }
    Ok(rings
        .iter()
        .flat_map(|ring| ring.all().map(|(id, key)| pseudonym(id, key, user_id)))
        .collect())
}
