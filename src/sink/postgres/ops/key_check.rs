//! The operator commands' key check: `rekey`, `retire-key`, `reveal` and `erase` refuse, as `run`
//! does, a key ring whose key for a recorded id is another key (its masks would never match the
//! stored ones, and `rekey` would rewrite every row under a key the consumers do not have).
//! `rekey --to` records the key it writes under, so consumers with another key under that id
//! are refused afterwards.

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
