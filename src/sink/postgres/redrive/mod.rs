//! Redeliveries of quarantined messages, and redriven dead letters (which carry their original
//! id, `<id>` or `<id>#<element>`): which outcomes of a write still land, given what the ledger
//! and the quarantine table already hold.
//!
//! A ledger id whose outcome is `quarantined` may be claimed again (`Reclaimed`): its outcomes
//! are processed once more, but only for the quarantine entries still open. An outcome whose
//! entry is open lands as a row (the entry gets `resolved_at`) or updates the entry (attempts,
//! last reason); one whose entry is resolved already landed and is dropped. So a login lands
//! once, and a login that keeps failing keeps one entry, however many copies come back.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use tokio_postgres::Transaction;

use super::PgSink;
use super::SinkError;
use crate::message::{Outcome, OutcomeKind, QuarantineRecord};

/// A quarantine entry's key: message id and element (-1: the whole message).
pub(crate) type EntryKey = (String, i32);

/// How the ledger took a message id in this write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Not in the ledger before: everything lands, except logins whose entry is resolved.
    Fresh,
    /// In the ledger as `quarantined`: only its open entries are tried again.
    Reclaimed,
}

/// What a write does with its outcomes.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    /// Rows to copy.
    pub(crate) rows: Vec<&'a Outcome>,
    /// Quarantine entries to insert.
    pub(crate) new_entries: Vec<(&'a Outcome, &'a QuarantineRecord)>,
    /// Open entries that failed again: attempts + 1, the latest reason.
    pub(crate) retried: Vec<(EntryKey, &'a QuarantineRecord)>,
    /// Open entries whose login landed now (or whose whole message is judged login by login).
    pub(crate) resolved: BTreeSet<EntryKey>,
    /// Reclaimed ids that landed a row: the ledger says `row` from now on.
    pub(crate) landed: BTreeSet<&'a str>,
    /// Ids that added a row or a new entry. The others count as duplicates: a redelivery that
    /// only counted another attempt added nothing, so `received = new + duplicates` still holds.
    pub(crate) acted: HashSet<&'a str>,
}

/// The entries a write must look at: those of reclaimed ids (and their whole-message entry),
/// and those a redriven dead letter of one login stands for.
pub(crate) fn entries_to_read(candidates: &[(&Outcome, Claim)]) -> BTreeSet<EntryKey> {
    let mut keys = BTreeSet::new();
    for (o, claim) in candidates {
        let (id, element) = o.message_id.entry(o.element);
        match claim {
            Claim::Reclaimed => {
                keys.insert((id.to_string(), element));
                keys.insert((id.to_string(), -1));
            }
            Claim::Fresh if id != o.message_id.as_str() => {
                keys.insert((id.to_string(), element));
            }
            Claim::Fresh => {}
        }
    }
    keys
}

/// The ledger entry each message id of a write claims: `row` if any of its logins is a row.
pub(crate) fn ledger_claims<'a>(outcomes: &[&'a Outcome]) -> BTreeMap<&'a str, &'static str> {
    let mut ledger: BTreeMap<&str, &str> = BTreeMap::new();
    for o in outcomes {
        let kind = ledger.entry(o.message_id.as_str()).or_insert("quarantined");
        if matches!(o.kind, OutcomeKind::Row { .. }) {
            *kind = "row";
        }
    }
    ledger
}

/// The outcomes of the messages newly claimed or reclaimed, each login once (a message delivered
/// twice in one write counts once), and how many deliveries the write held. Pure.
pub(crate) fn candidates<'a>(
    outcomes: &[&'a Outcome],
    new_ids: &HashSet<String>,
    reclaimed: &HashSet<String>,
) -> (Vec<(&'a Outcome, Claim)>, u64) {
    let mut seen = HashSet::new();
    let candidates: Vec<(&Outcome, Claim)> = (outcomes.iter().copied())
        .filter_map(|o| match o.message_id.as_str() {
            #[cfg(feature = "sim-mutants")]
            _ if crate::mutants::active(crate::mutants::Mutant::SkipLedgerClaim) => {
                Some((o, Claim::Fresh))
            }
            id if new_ids.contains(id) => Some((o, Claim::Fresh)),
            id if reclaimed.contains(id) => Some((o, Claim::Reclaimed)),
            _ => None,
        })
        .filter(|(o, _)| seen.insert((o.message_id.as_str(), o.element)))
        .collect();
    // Each delivery has one outcome that stands for the message or its first login.
    let deliveries = outcomes
        .iter()
        .filter(|o| o.element.unwrap_or(0) == 0)
        .count();
    (candidates, deliveries as u64)
}

/// Decide, from the claims and the entries read (`true`: resolved), what lands. Pure.
pub(crate) fn plan<'a>(
    candidates: &[(&'a Outcome, Claim)],
    entries: &HashMap<EntryKey, bool>,
) -> Plan<'a> {
    let mut plan = Plan::default();
    for &(o, claim) in candidates {
        let (id, element) = o.message_id.entry(o.element);
        let key = (id.to_string(), element);
        let whole = (id.to_string(), -1);
        // `open`: the outcome's own entry exists and is open; `superseding`: a reclaimed message
        // now judged login by login, its whole-message entry open.
        let (open, superseding) = match (entries.get(&key), claim) {
            (Some(true), _) => continue,
            (Some(false), _) => (true, false),
            (None, Claim::Fresh) => (false, false),
            (None, Claim::Reclaimed) if entries.get(&whole) == Some(&false) => (false, true),
            (None, Claim::Reclaimed) => continue,
        };
        if superseding {
            plan.resolved.insert(whole);
        }
        match &o.kind {
            OutcomeKind::Row { .. } => {
                plan.acted.insert(o.message_id.as_str());
                plan.rows.push(o);
                if open {
                    plan.resolved.insert(key);
                }
                if claim == Claim::Reclaimed {
                    plan.landed.insert(o.message_id.as_str());
                }
            }
            OutcomeKind::Quarantine(q) if open => plan.retried.push((key, q)),
            OutcomeKind::Quarantine(q) => {
                plan.acted.insert(o.message_id.as_str());
                plan.new_entries.push((o, q));
            }
        }
    }
    plan
}

const RECLAIM: &str = "SELECT message_id FROM processed_messages \
                       WHERE message_id = ANY($1) AND outcome = 'quarantined' FOR UPDATE";
/// Locked, so two copies written at once by two consumers are taken one after the other.
const READ_ENTRIES: &str = "SELECT q.message_id, q.element, q.resolved_at IS NOT NULL \
                            FROM quarantined_messages q \
                            JOIN unnest($1::text[], $2::int4[]) AS k(id, el) \
                            ON q.message_id = k.id AND q.element = k.el FOR UPDATE OF q";
const RETRY: &str = "UPDATE quarantined_messages q SET attempts = q.attempts + 1, \
                     last_attempt_at = now(), reason_code = k.code, reason = k.reason, \
                     receive_count = k.count \
                     FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[], $5::int4[]) \
                     AS k(id, el, code, reason, count) \
                     WHERE q.message_id = k.id AND q.element = k.el AND q.resolved_at IS NULL";
const RESOLVE: &str = "UPDATE quarantined_messages q SET resolved_at = now() \
                       FROM unnest($1::text[], $2::int4[]) AS k(id, el) \
                       WHERE q.message_id = k.id AND q.element = k.el AND q.resolved_at IS NULL";
const LANDED: &str = "UPDATE processed_messages SET outcome = 'row' WHERE message_id = ANY($1)";
/// Which of these (id, entry id, element) were quarantined before, or landed whole.
const SEEN: &str = "SELECT k.i::int4 FROM unnest($1::text[], $2::text[], $3::int4[]) \
                    WITH ORDINALITY AS k(id, entry, el, i) \
                    WHERE EXISTS (SELECT 1 FROM quarantined_messages q \
                                  WHERE q.message_id = k.entry AND q.element = k.el) \
                       OR EXISTS (SELECT 1 FROM processed_messages p \
                                  WHERE p.message_id = k.id AND p.outcome = 'row')";

/// Of these ids (not newly claimed), those in the ledger as `quarantined`, now locked.
pub(super) async fn reclaim(
    tx: &Transaction<'_>,
    ids: &[&str],
) -> Result<HashSet<String>, tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = tx.query(RECLAIM, &[&ids]).await?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

/// The entries among `keys` that exist (locked): `true` if resolved.
pub(super) async fn read_entries(
    tx: &Transaction<'_>,
    keys: &BTreeSet<EntryKey>,
) -> Result<HashMap<EntryKey, bool>, tokio_postgres::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<&str> = keys.iter().map(|(id, _)| id.as_str()).collect();
    let elements: Vec<i32> = keys.iter().map(|(_, el)| *el).collect();
    let rows = tx.query(READ_ENTRIES, &[&ids, &elements]).await?;
    Ok(rows
        .into_iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect())
}

/// Apply the plan's updates: entries retried and resolved, reclaimed ids landed.
pub(super) async fn settle(
    tx: &Transaction<'_>,
    plan: &Plan<'_>,
) -> Result<(), tokio_postgres::Error> {
    if !plan.retried.is_empty() {
        let ids: Vec<&str> = plan
            .retried
            .iter()
            .map(|((id, _), _)| id.as_str())
            .collect();
        let elements: Vec<i32> = plan.retried.iter().map(|((_, el), _)| *el).collect();
        let codes: Vec<&str> = (plan.retried.iter())
            .map(|(_, q)| q.rejection.code.as_str())
            .collect();
        let reasons: Vec<&str> = (plan.retried.iter())
            .map(|(_, q)| q.rejection.message.as_str())
            .collect();
        let counts: Vec<i32> = (plan.retried.iter())
            .map(|(_, q)| i32::try_from(q.receive_count).unwrap_or(i32::MAX))
            .collect();
        tx.execute(RETRY, &[&ids, &elements, &codes, &reasons, &counts])
            .await?;
    }
    if !plan.resolved.is_empty() {
        let ids: Vec<&str> = plan.resolved.iter().map(|(id, _)| id.as_str()).collect();
        let elements: Vec<i32> = plan.resolved.iter().map(|(_, el)| *el).collect();
        tx.execute(RESOLVE, &[&ids, &elements]).await?;
    }
    if !plan.landed.is_empty() {
        let ids: Vec<&str> = plan.landed.iter().copied().collect();
        tx.execute(LANDED, &[&ids]).await?;
    }
    Ok(())
}

impl PgSink {
    /// Which of these refused logins must not be forwarded to the dead-letter queue: quarantined
    /// before, or of a message that landed (their dead letter went out then), or withheld by an
    /// erasure since they were sent (the raw body would carry the subject's values out; the entry,
    /// stripped of them, is all that is kept).
    pub(crate) async fn not_to_forward(
        &mut self,
        refused: &[&Outcome],
    ) -> Result<HashSet<usize>, SinkError> {
        if refused.is_empty() {
            return Ok(HashSet::new());
        }
        let ids: Vec<&str> = refused.iter().map(|o| o.message_id.as_str()).collect();
        let keys: Vec<(&str, i32)> = (refused.iter())
            .map(|o| o.message_id.entry(o.element))
            .collect();
        let entries: Vec<&str> = keys.iter().map(|(id, _)| *id).collect();
        let elements: Vec<i32> = keys.iter().map(|(_, el)| *el).collect();
        let rows = self.db.query(SEEN, &[&ids, &entries, &elements]).await?;
        let mut skip: HashSet<usize> = (rows.iter())
            .filter_map(|r| usize::try_from(r.get::<_, i32>(0) - 1).ok())
            .collect();
        skip.extend(self.naming_erased(refused).await?);
        Ok(skip)
    }

    /// Which of these refused logins an erasure withholds from the dead-letter queue
    /// ([`super::erased::withheld`]).
    async fn naming_erased(&mut self, refused: &[&Outcome]) -> Result<Vec<usize>, SinkError> {
        let Some(check) = self.erasures.as_ref() else {
            return Ok(Vec::new());
        };
        let client = self.db.client().await?;
        let withheld = super::erased::withheld(&*client, check, refused).await;
        withheld.map_err(|e| self.db.on_error(e))
    }
}

#[cfg(test)]
mod tests;
