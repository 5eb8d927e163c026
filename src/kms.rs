//! Envelope encryption of masking keys with AWS KMS: the data key is stored encrypted
//! (`<id>:kms:<base64 ciphertext>` in the key list) and decrypted with `kms:Decrypt` at start, so
//! the plaintext key exists only in the process's (zeroed-on-drop) memory.

use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use url::Url;
use zeroize::Zeroizing;

use crate::aws::SdkFailure;

use crate::mask::keys::{KeyEntry, KeyError, GENERATED_KEY_BYTES};
use crate::mask::{KeyRing, MaskKey};

async fn client(endpoint: Option<&Url>) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&crate::aws::config(endpoint, None).await)
}

/// Turn parsed entries into a key ring, decrypting `kms:` entries (one KMS call each).
pub(crate) async fn decrypt_entries(
    entries: Vec<KeyEntry>,
    endpoint: Option<&Url>,
) -> Result<KeyRing, KeyError> {
    let mut kms = None;
    let mut keys = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry {
            KeyEntry::Plain(id, key) => keys.push((id, key)),
            KeyEntry::Kms(id, ciphertext) => {
                if kms.is_none() {
                    kms = Some(client(endpoint).await);
                }
                let out = kms
                    .as_ref()
                    .expect("set above")
                    .decrypt()
                    .ciphertext_blob(Blob::new(ciphertext))
                    .send()
                    .await
                    .map_err(|e| KeyError::Kms {
                        id: id.clone(),
                        message: SdkFailure::of(&e).to_string(),
                    })?;
                let plaintext = Zeroizing::new(
                    out.plaintext
                        .map(|blob| blob.into_inner())
                        .unwrap_or_default(),
                );
                let key = MaskKey::from_bytes(&id, plaintext)?;
                keys.push((id, key));
            }
        }
    }
    KeyRing::new(keys)
}

/// A new data key under the KMS key `kms_key_id`, as a key-list entry `<id>:kms:<base64>`.
/// Only the encrypted form is returned: the plaintext never leaves KMS's answer.
pub(crate) async fn generate_entry(
    id: &str,
    kms_key_id: &str,
    endpoint: Option<&Url>,
) -> Result<String, KeyError> {
    let out = client(endpoint)
        .await
        .generate_data_key_without_plaintext()
        .key_id(kms_key_id)
        .number_of_bytes(GENERATED_KEY_BYTES as i32)
        .send()
        .await
        .map_err(|e| KeyError::Kms {
            id: id.to_string(),
            message: SdkFailure::of(&e).to_string(),
        })?;
    let blob = out
        .ciphertext_blob
        .map(|blob| blob.into_inner())
        .unwrap_or_default();
    Ok(format!(
        "{id}:kms:{}",
        base64::engine::general_purpose::STANDARD.encode(blob)
    ))
}
