//! The writer's side of an erasure (`erased_subjects`, migration 0014): in the transaction of its
//! COPY, a batch leaves out the logins of subjects erased after those logins were sent, so an
//! erasure holds against messages still queued, redelivered or redriven later. Their messages
//! are ledgered as usual (never retried); a login sent after the erasure is new data and lands.
//!
//! Lock order makes `erase` and writers unable to interleave: every write takes `ROW EXCLUSIVE`
//! on `user_logins` before it reads the records, and `erase` takes `SHARE ROW EXCLUSIVE` on it
//! before anything else. So an erase waits for the writes in flight to commit (and then deletes their rows), and
//! a write that starts during an erase waits for it to commit and then reads its record.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_postgres::Transaction;

use crate::mask::{strip_subject, ErasureFingerprints, Stripped};
use crate::message::{Outcome, OutcomeKind, QuarantineRecord};

/// The writer's first statement when it honours erasures (see the module docs).
pub(super) const LOCK: &str = "LOCK TABLE user_logins IN ROW EXCLUSIVE MODE";
const RECORDS: &str =
    "SELECT fingerprint, erased_at FROM erased_subjects WHERE fingerprint = ANY($1)";

/// What of a batch is written once erasures are honoured.
pub(super) struct Kept<'a> {
    /// Rows of subjects not erased since.
    pub(super) rows: Vec<&'a Outcome>,
    /// Quarantine entries, an erased subject's logins taken out of those naming others too.
    pub(super) entries: Vec<(&'a Outcome, Cow<'a, QuarantineRecord>)>,
    /// Logins left out: rows, and entries that were the erased subjects' alone.
    pub(super) left_out: u64,
}

impl<'a> Kept<'a> {
    /// Everything, for a writer that does not honour erasures (no keys: `run` refuses to start
    /// that way while records exist).
    pub(super) fn all(
        rows: &[&'a Outcome],
        entries: &[(&'a Outcome, &'a QuarantineRecord)],
    ) -> Self {
        Kept {
            rows: rows.to_vec(),
            entries: (entries.iter())
                .map(|&(o, q)| (o, Cow::Borrowed(q)))
                .collect(),
            left_out: 0,
        }
    }
}

/// Leave out of `rows` and `entries` what erasures recorded after it was sent.
pub(super) async fn keep<'a>(
    tx: &Transaction<'_>,
    check: &ErasureFingerprints,
    rows: &[&'a Outcome],
    entries: &[(&'a Outcome, &'a QuarantineRecord)],
) -> Result<Kept<'a>, tokio_postgres::Error> {
    let mut lookups: HashMap<&str, Vec<String>> = HashMap::new();
    let named = rows
        .iter()
        .filter_map(|o| row_user(o))
        .chain(entries.iter().flat_map(|(_, q)| named_users(q)));
    for user in named {
        lookups.entry(user).or_insert_with(|| check.lookups(user));
    }
    let mut fingerprints: Vec<&str> = lookups.values().flatten().map(String::as_str).collect();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    let erased_at: HashMap<String, DateTime<Utc>> = if fingerprints.is_empty() {
        HashMap::new()
    } else {
        (tx.query(RECORDS, &[&fingerprints]).await?.iter())
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let erased_since = |user: &str, sent_at: DateTime<Utc>| {
        (lookups.get(user).into_iter().flatten())
            .any(|fp| erased_at.get(fp).is_some_and(|at| sent_at < *at))
    };
    let mut kept = Kept {
        rows: Vec::with_capacity(rows.len()),
        entries: Vec::with_capacity(entries.len()),
        left_out: 0,
    };
    for &row in rows {
        match (row_user(row), &row.kind) {
            (Some(user), OutcomeKind::Row { sent_at, .. }) if erased_since(user, *sent_at) => {
                kept.left_out += 1
            }
            _ => kept.rows.push(row),
        }
    }
    for &(outcome, record) in entries {
        let erased: Vec<String> = (named_users(record))
            .filter(|user| erased_since(user, record.sent_at))
            .map(str::to_string)
            .collect();
        match without(record, &erased) {
            Some(record) => kept.entries.push((outcome, record)),
            None => kept.left_out += 1,
        }
    }
    Ok(kept)
}

/// The user a row is of.
fn row_user(outcome: &Outcome) -> Option<&str> {
    match &outcome.kind {
        OutcomeKind::Row { login, .. } => Some(&login.user_id),
        OutcomeKind::Quarantine(_) => None,
    }
}

/// Every user an entry names, as stored.
fn named_users(record: &QuarantineRecord) -> impl Iterator<Item = &str> {
    (record.user_id.iter())
        .chain(&record.user_ids)
        .map(String::as_str)
}

/// `record` without the logins of the `erased` users: unchanged if it names none of them, `None`
/// if it is theirs alone (or unreadable once they are taken out).
fn without<'a>(
    record: &'a QuarantineRecord,
    erased: &[String],
) -> Option<Cow<'a, QuarantineRecord>> {
    if erased.is_empty() {
        return Some(Cow::Borrowed(record));
    }
    let others: Vec<String> = (named_users(record))
        .filter(|user| !erased.iter().any(|e| e == user))
        .map(str::to_string)
        .collect();
    if others.is_empty() {
        return None;
    }
    let Stripped::Kept(body) = strip_subject(&record.body_masked, erased) else {
        return None;
    };
    let mut others = others;
    others.sort();
    others.dedup();
    let user_id = match &record.user_id {
        Some(user) if erased.contains(user) => others.first().cloned(),
        user => user.clone(),
    };
    Some(Cow::Owned(QuarantineRecord {
        body_masked: body,
        user_ids: others,
        user_id,
        ..record.clone()
    }))
}
