//! The recorded fingerprint of each key id (migration 0011): read at start by `run` and `check`,
//! written the first time a key masks a row.

use super::connection::PgConnection;
use super::{PgSink, SinkError};

const RECORDED: &str = "SELECT key_id, fingerprint FROM mask_key_fingerprints ORDER BY key_id";
const RECORD: &str = "INSERT INTO mask_key_fingerprints (key_id, fingerprint) VALUES ($1, $2) \
     ON CONFLICT (key_id) DO NOTHING";

/// `(key id, fingerprint)` of every key that has masked a row here.
pub(super) async fn recorded(db: &mut PgConnection) -> Result<Vec<(String, String)>, SinkError> {
    let rows = db.query(RECORDED, &[]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Stop with one line (ids and short fingerprints, never key material) if a key of `ring`
/// (`(id, fingerprint)`) is not the one recorded under its id. Shared by the writer and the
/// operator commands.
pub(super) async fn check(
    db: &mut PgConnection,
    ring: &[(String, String)],
) -> Result<(), SinkError> {
    match crate::mask::replaced_keys(ring, &recorded(db).await?) {
        Some(line) => Err(SinkError::KeyReplaced(line)),
        None => Ok(()),
    }
}

/// Record `fingerprint` for `key_id` if the id has none yet, then check it: another key under
/// the same id, recorded first, is refused.
pub(super) async fn record(
    db: &mut PgConnection,
    key_id: &str,
    fingerprint: &str,
) -> Result<(), SinkError> {
    db.execute(RECORD, &[&key_id, &fingerprint]).await?;
    check(db, &[(key_id.to_string(), fingerprint.to_string())]).await
}

impl PgSink {
    /// `(key id, fingerprint)` of every key that has masked a row here.
    pub async fn recorded_key_fingerprints(&mut self) -> Result<Vec<(String, String)>, SinkError> {
        recorded(&mut self.db).await
    }

    /// Record `fingerprint` for `key_id` with the first write through this sink (see
    /// [`Self::record_pending_key`]).
    pub fn record_key_on_first_write(&mut self, key_id: &str, fingerprint: &str) {
        self.pending_key = Some((key_id.to_string(), fingerprint.to_string()));
    }

    /// Leave out of every write the logins of subjects erased after they were sent (erasure
    /// records under any key of `keys`; see `sink/postgres/erased.rs`).
    pub fn honour_erasures(&mut self, keys: &crate::mask::KeyRing) {
        self.erasures = Some(crate::mask::ErasureFingerprints::new(keys));
    }

    /// How many erasure records exist: a writer without keys cannot honour them.
    pub async fn erasure_records(&mut self) -> Result<i64, SinkError> {
        let row = (self.db)
            .query_one("SELECT count(*) FROM erased_subjects", &[])
            .await?;
        Ok(row.get(0))
    }

    /// Before the first write: record the active key's fingerprint if its id has none yet, and
    /// stop if the id already has another one (another consumer with another key under the same
    /// id got there first).
    pub(crate) async fn record_pending_key(&mut self) -> Result<(), SinkError> {
        let Some((key_id, fingerprint)) = self.pending_key.clone() else {
            return Ok(());
        };
        record(&mut self.db, &key_id, &fingerprint).await?;
        self.pending_key = None;
        Ok(())
    }
}
