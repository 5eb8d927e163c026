//! The operator commands' key check: `rekey`, `retire-key`, `reveal` and `erase` refuse, as `run`
//! does, a key ring whose key for a recorded id is another key (its masks would never match the
//! stored ones, and `rekey` would rewrite every row under a key the consumers do not have).
//! `rekey --to` records the key it writes under, so consumers with another key under that id
//! are refused afterwards; `rekey` and `reveal` also prove key ids that have no recorded
//! fingerprint against the stored rows before decrypting with them.

use super::super::key_fingerprints::{check, record};
use super::super::SinkError;
use super::PgOperator;

impl PgOperator {
    /// Stop with one line (ids and short fingerprints, never key material) if any key of `ring`
    /// (`(id, fingerprint)`, [`crate::mask::KeyRing::key_fingerprints`]) is not the recorded one.
    pub async fn check_key_ring(&mut self, ring: &[(String, String)]) -> Result<(), SinkError> {
        check(&mut self.db, ring).await
    }

    /// Record the key `rekey` writes under (if its id has none yet), then check it: another
    /// operator's key under the same id, recorded first, is refused.
    pub async fn record_key(&mut self, id: &str, fingerprint: &str) -> Result<(), SinkError> {
        record(&mut self.db, id, fingerprint).await
    }
}

/// What stored rows say about the key of `$1`: an aes-siv mask under it (ip, else device), and
/// whether an ipcrypt-pfx pseudonym is under it.
const EVIDENCE: &str = "SELECT
    (SELECT masked_ip FROM user_logins WHERE split_part(masked_ip, ':', 1) = $1
         AND masked_ip !~ '^[^:]+:[0-9a-fA-F]{64}$' LIMIT 1),
    (SELECT masked_device_id FROM user_logins WHERE split_part(masked_device_id, ':', 1) = $1
         AND masked_device_id !~ '^[^:]+:[0-9a-fA-F]{64}$' LIMIT 1),
    EXISTS (SELECT 1 FROM user_logins WHERE masked_ip_network LIKE '%:pfx:%'
         AND split_part(masked_ip_network, ':', 1) = $1)";

impl PgOperator {
    /// [`check_key_ring`](Self::check_key_ring) for commands that decrypt (`rekey`, `reveal`),
    /// and more: a key id with no recorded fingerprint (rows written before migration 11) is
    /// proved against the stored rows, as nothing recorded can vouch for it. An aes-siv mask
    /// under its id must open (a wrong key is refused, not used). Without one, an ipcrypt-pfx
    /// pseudonym under it is refused: such a pseudonym opens under any key, to a wrong address, so
    /// `rekey` would rewrite it to garbage and `reveal` would name the wrong network, silently.
    pub async fn check_key_ring_for_decrypting(
        &mut self,
        keys: &crate::mask::KeyRing,
    ) -> Result<(), SinkError> {
        let ring = keys.key_fingerprints();
        check(&mut self.db, &ring).await?;
        let recorded = super::super::key_fingerprints::recorded(&mut self.db).await?;
        let masker = crate::mask::Masker::new(crate::mask::StrategyName::AesSiv, Some(keys))
            .map_err(|e| SinkError::NotConfigured(e.to_string()))?;
        for (id, _) in ring
            .iter()
            .filter(|(id, _)| !recorded.iter().any(|(r, _)| r == id))
        {
            let row = self.db.query_one(EVIDENCE, &[id]).await?;
            let (ip, device, pfx): (Option<String>, Option<String>, bool) =
                (row.get(0), row.get(1), row.get(2));
            let sample = (ip.map(|m| (crate::mask::Field::Ip, m)))
                .or(device.map(|m| (crate::mask::Field::DeviceId, m)));
            match sample {
                Some((field, mask)) if masker.reveal(field, &mask).is_ok() => {}
                Some(_) => {
                    return Err(SinkError::KeyReplaced(format!(
                        "the key ring's key for `{id}` does not open the stored `{id}` masks (no \
                         fingerprint is recorded for `{id}`, so they were tried): it is not the \
                         key that masked them; restore the original key ring from its backup \
                         (docs/recovery.md), or give a new key a new id"
                    )))
                }
                None if pfx => {
                    return Err(SinkError::KeyReplaced(format!(
                        "nothing can prove the key ring's key for `{id}`: no fingerprint is \
                         recorded for it and no aes-siv mask is stored under it, and its \
                         ipcrypt-pfx network pseudonyms open under any key (to a wrong address); \
                         restore the original key ring from its backup (docs/recovery.md) and \
                         record its fingerprint by running `login-etl run` once with `{id}` \
                         active, or leave `{id}` out of the ring"
                    )))
                }
                None => {}
            }
        }
        Ok(())
    }
}
