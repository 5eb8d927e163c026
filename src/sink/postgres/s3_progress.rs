//! How far each S3 object has been read (`s3_objects`, migration 19), counted in the same
//! transaction as its chunks: a chunk counts only when its ledger id is new, so the counts stay
//! exact whatever is redelivered or killed half-way. `status` and `backfill --wait` read them.

use std::collections::{BTreeMap, HashSet};

use tokio_postgres::Transaction;

use super::redrive::Claim;
use crate::message::Outcome;

/// Objects in a fixed order, so two consumers never lock the same two rows the other way round.
const RECORD: &str = "INSERT INTO s3_objects AS o (object_id, logins, chunks, first_read_at, \
                      finished_at) \
                      SELECT id, n, c, now(), CASE WHEN f THEN now() END \
                      FROM unnest($1::text[], $2::int8[], $3::int4[], $4::bool[]) AS t(id, n, c, f) \
                      ORDER BY id \
                      ON CONFLICT (object_id) DO UPDATE SET logins = o.logins + EXCLUDED.logins, \
                      chunks = o.chunks + EXCLUDED.chunks, \
                      first_read_at = coalesce(o.first_read_at, EXCLUDED.first_read_at), \
                      finished_at = coalesce(o.finished_at, EXCLUDED.finished_at)";

/// What one transaction read of one object.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) logins: i64,
    pub(crate) chunks: i32,
    pub(crate) finished: bool,
}

/// The object an S3 chunk's ledger id belongs to (`s3:<32 hex>`), `None` for an SQS message.
pub(crate) fn object_of(message_id: &str) -> Option<&str> {
    let object = message_id.get(..35)?;
    // `s3:<32 hex>:<first line>` only: a redriven login of a chunk (`…:<first>#<i>`) was counted
    // when it was quarantined.
    let first = message_id[35..].strip_prefix(':').unwrap_or("");
    let is_chunk = object.starts_with("s3:")
        && object[3..].bytes().all(|b| b.is_ascii_hexdigit())
        && !first.is_empty()
        && first.bytes().all(|b| b.is_ascii_digit());
    is_chunk.then_some(object)
}

/// The chunks that are new in this transaction, by object; and the objects whose last chunk is
/// in it, new or not (a last chunk that committed before as "not the last", because the
/// connection dropped after the object's last byte, finishes its object when read again).
pub(crate) fn tally<'o>(
    candidates: &[(&Outcome, Claim)],
    all: impl Iterator<Item = &'o Outcome>,
) -> BTreeMap<String, Tally> {
    let mut objects: BTreeMap<String, Tally> = BTreeMap::new();
    for outcome in all.filter(|o| o.ends_object) {
        if let Some(object) = object_of(outcome.message_id.as_str()) {
            objects.entry(object.to_string()).or_default().finished = true;
        }
    }
    let mut chunks = HashSet::new();
    for (outcome, claim) in candidates {
        let Claim::Fresh = claim else { continue };
        let Some(object) = object_of(outcome.message_id.as_str()) else {
            continue;
        };
        let entry = objects.entry(object.to_string()).or_default();
        entry.logins += 1;
        entry.finished |= outcome.ends_object;
        if chunks.insert(outcome.message_id.as_str()) {
            entry.chunks += 1;
        }
    }
    objects
}

/// Add this transaction's chunks to their objects' counts.
pub(super) async fn record<'o>(
    tx: &Transaction<'_>,
    candidates: &[(&Outcome, Claim)],
    all: impl Iterator<Item = &'o Outcome>,
) -> Result<(), tokio_postgres::Error> {
    let objects = tally(candidates, all);
    if objects.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = objects.keys().map(String::as_str).collect();
    let logins: Vec<i64> = objects.values().map(|t| t.logins).collect();
    let chunks: Vec<i32> = objects.values().map(|t| t.chunks).collect();
    let finished: Vec<bool> = objects.values().map(|t| t.finished).collect();
    tx.execute(RECORD, &[&ids, &logins, &chunks, &finished])
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_chunk_ids_name_an_object() {
        let object = format!("s3:{}", "ab12".repeat(8));
        assert_eq!(object_of(&format!("{object}:0")), Some(object.as_str()));
        assert_eq!(object_of(&format!("{object}:12345")), Some(object.as_str()));
        for id in [
            "s3:short:0".to_string(),
            format!("{object}0"),
            format!("s3:{}:0", "zz".repeat(16)),
            format!("{object}:1001#3"),
            format!("{object}:"),
            "5dd9a070-1111-2222-3333-444455556666".into(),
            object.clone(),
            "s3:é".repeat(20),
        ] {
            assert_eq!(object_of(&id), None, "{id}");
        }
    }
}
