//! Envelope encryption of masking keys with AWS KMS: the data key is stored encrypted
//! (`<id>:kms:<base64 ciphertext>` in the key list) and decrypted with `kms:Decrypt` at start, so
//! the plaintext key exists only in the process's (zeroed-on-drop) memory.
//!
//! Data keys are bound to an encryption context, `service=login-etl` and `key_id=<id>`: a key
//! policy can allow `kms:Decrypt` only with it (deploy/cloudformation/queue-and-key.yaml), and a
//! ciphertext moved to another key id no longer decrypts. Entries made before the context was
//! used still decrypt without it, with a warning to make them anew.

use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use url::Url;
use zeroize::Zeroizing;

use crate::aws::SdkFailure;

use super::keys::{KeyEntry, KeyError, GENERATED_KEY_BYTES};
use super::{KeyRing, MaskKey};

/// The encryption context's service entry, which key policies can require.
pub(crate) const CONTEXT_SERVICE: &str = "login-etl";

fn context(id: &str) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        ("service".to_string(), CONTEXT_SERVICE.to_string()),
        ("key_id".to_string(), id.to_string()),
    ])
}

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
                let kms = kms.as_ref().expect("set above");
                let decrypt = |with_context: bool| {
                    kms.decrypt()
                        .ciphertext_blob(Blob::new(ciphertext.clone()))
                        .set_encryption_context(with_context.then(|| context(&id)))
                        .send()
                };
                let out = match decrypt(true).await {
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_invalid_ciphertext_exception()) =>
                    {
                        let out = decrypt(false).await;
                        if out.is_ok() {
                            tracing::warn!(
                                key_id = %id,
                                "this KMS key entry was made without login-etl's encryption context: make it anew with `login-etl keygen --kms-key-id` (a key policy that requires the context will refuse it)"
                            );
                        }
                        out
                    }
                    other => other,
                }
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
        .set_encryption_context(Some(context(id)))
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
