//! The writer's side of an erasure (`erased_subjects`, migration 0014): in the transaction of its
//! COPY, a batch leaves out the logins of subjects erased after those logins were sent, so an
//! erasure holds against messages still queued, redelivered or redriven later. Their messages
//! are ledgered as usual (never retried); a login sent after the erasure is new data and lands.
//!
//! "Sent" is the earliest time anything trustworthy says the login existed, never a later one
//! ([`existed_by`]): the envelope's time (the producer's word, which may run minutes ahead), the
//! queue's SentTimestamp (new on every redrive: SQS gives a moved or re-sent dead letter a new
//! one), for a dead letter re-sent with its id but not its first-sending time the oldest a dead
//! letter can be, the time this consumer received it (quarantine entries), and when the ledger
//! first recorded its message id (a redriven dead letter carries its original id, so the ledger
//! knows it from before the erasure).
//!
//! The same rule keeps a refused login from going to the dead-letter queue raw ([`withheld`]),
//! and there it fails closed: a refused login whose users cannot be read (a body cut short) is
//! withheld if any erasure came after it existed.
//!
//! Lock order makes `erase` and writers unable to interleave: every write takes `ROW EXCLUSIVE`
//! on `user_logins` before it reads the records, and `erase` takes `SHARE ROW EXCLUSIVE` on it
//! before anything else. So an erase waits for the writes in flight to commit (and then deletes their rows), and
//! a write that starts during an erase waits for it to commit and then reads its record.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Transaction};

use crate::mask::{strip_subject, ErasureFingerprints, Stripped};
use crate::message::{Outcome, OutcomeKind, QuarantineRecord};

/// The writer's first statement (see the module docs).
pub(super) const LOCK: &str = "LOCK TABLE user_logins IN ROW EXCLUSIVE MODE";
/// A writer without keys (`--mask-strategy sha256`) stops at the first erasure recorded while it
/// runs: it cannot tell whose logins it writes. 42501 stops the run (not retried).
pub(super) const NONE_ERASED: &str =
    "DO $$ BEGIN IF EXISTS (SELECT 1 FROM public.erased_subjects) THEN \
     RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'a subject was erased while this \
     --mask-strategy sha256 consumer ran, and without keys it cannot leave out their logins: \
     stop it (run refuses to start once erasures exist; use a keyed strategy)'; END IF; END $$";
/// An erasure time PostgreSQL can hold but a client cannot (`infinity`, from before migration
/// 18 or written by the owner) is read failing closed: `infinity` erases every login,
/// `-infinity` none.
const RECORDS: &str = "SELECT fingerprint, CASE WHEN erased_at = 'infinity' \
     THEN '9999-12-31'::timestamptz WHEN erased_at = '-infinity' THEN '1970-01-01'::timestamptz \
     ELSE erased_at END FROM erased_subjects WHERE fingerprint = ANY($1)";
/// When the ledger first recorded these message ids (the row of an id claimed in this
/// transaction says now(), no earlier than its sending).
const FIRST_RECORDED: &str =
    "SELECT message_id, processed_at FROM processed_messages WHERE message_id = ANY($1)";
/// The latest erasure of anyone.
const LATEST: &str = "SELECT max(CASE WHEN erased_at = 'infinity' THEN '9999-12-31'::timestamptz \
     WHEN erased_at = '-infinity' THEN '1970-01-01'::timestamptz ELSE erased_at END) \
     FROM erased_subjects";

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

/// When each of these users was last erased, for those with a record (one query).
pub(super) async fn last_erased<'u>(
    client: &impl GenericClient,
    check: &ErasureFingerprints,
    users: impl Iterator<Item = &'u str>,
) -> Result<HashMap<&'u str, DateTime<Utc>>, tokio_postgres::Error> {
    let lookups: HashMap<&str, Vec<String>> = users.map(|u| (u, check.lookups(u))).collect();
    let mut fingerprints: Vec<&str> = lookups.values().flatten().map(String::as_str).collect();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    if fingerprints.is_empty() {
        return Ok(HashMap::new());
    }
    let erased_at: HashMap<String, DateTime<Utc>> = (client.query(RECORDS, &[&fingerprints]))
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok((lookups.into_iter())
        .filter_map(|(user, fps)| {
            let last = fps.iter().filter_map(|fp| erased_at.get(fp)).max()?;
            Some((user, *last))
        })
        .collect())
}

/// Leave out of `rows` and `entries` what erasures recorded after it was sent.
pub(super) async fn keep<'a>(
    tx: &Transaction<'_>,
    check: &ErasureFingerprints,
    rows: &[&'a Outcome],
    entries: &[(&'a Outcome, &'a QuarantineRecord)],
) -> Result<Kept<'a>, tokio_postgres::Error> {
    let named = (rows.iter().filter_map(|o| row_user(o)))
        .chain(entries.iter().flat_map(|(_, q)| named_users(q)));
    let last_erased = last_erased(tx, check, named).await?;
    let first_recorded = match last_erased.is_empty() {
        true => HashMap::new(),
        false => {
            first_recorded(tx, rows.iter().copied().chain(entries.iter().map(|e| e.0))).await?
        }
    };
    let existed_by = |outcome: &Outcome| existed_by(outcome, &first_recorded);
    let erased_since = |user: &str, existed| last_erased.get(user).is_some_and(|at| existed < *at);
    let mut kept = Kept {
        rows: Vec::with_capacity(rows.len()),
        entries: Vec::with_capacity(entries.len()),
        left_out: 0,
    };
    for &row in rows {
        match row_user(row) {
            Some(user) if erased_since(user, existed_by(row)) => kept.left_out += 1,
            _ => kept.rows.push(row),
        }
    }
    for &(outcome, record) in entries {
        let existed = existed_by(outcome);
        let erased: Vec<String> = (named_users(record))
            .filter(|user| erased_since(user, existed))
            .map(str::to_string)
            .collect();
        match without(record, &erased) {
            Some(record) => kept.entries.push((outcome, record)),
            None => kept.left_out += 1,
        }
    }
    Ok(kept)
}

/// Which of these refused logins must not go to the dead-letter queue raw: those naming a
/// subject erased since they existed, and, failing closed, those naming nobody that can be read
/// (a body cut short may still hold an erased subject's values) that existed before the latest
/// erasure. Their quarantine entries, scrubbed, are all that is kept.
pub(super) async fn withheld(
    client: &impl GenericClient,
    check: &ErasureFingerprints,
    refused: &[&Outcome],
) -> Result<Vec<usize>, tokio_postgres::Error> {
    let records: Vec<(usize, &Outcome, &QuarantineRecord)> = (refused.iter().enumerate())
        .filter_map(|(i, o)| match &o.kind {
            OutcomeKind::Quarantine(q) => Some((i, *o, q)),
            OutcomeKind::Row { .. } => None,
        })
        .collect();
    let named = records.iter().flat_map(|(_, _, q)| named_users(q));
    let last_erased = last_erased(client, check, named).await?;
    let nameless = (records.iter()).any(|(_, _, q)| named_users(q).next().is_none());
    let latest: Option<DateTime<Utc>> = match nameless {
        true => client.query_one(LATEST, &[]).await?.get(0),
        false => None,
    };
    if last_erased.is_empty() && latest.is_none() {
        return Ok(Vec::new());
    }
    let first_recorded = first_recorded(client, records.iter().map(|(_, o, _)| *o)).await?;
    Ok((records.iter())
        .filter(|(_, outcome, record)| {
            let existed = existed_by(outcome, &first_recorded);
            let mut users = named_users(record).peekable();
            match users.peek() {
                None => latest.is_some_and(|at| existed < at),
                Some(_) => users.any(|u| last_erased.get(u).is_some_and(|at| existed < *at)),
            }
        })
        .map(|(i, _, _)| *i)
        .collect())
}

/// The earliest time anything trustworthy says an outcome's login existed (see the module docs),
/// given when the ledger first recorded the message ids.
fn existed_by(outcome: &Outcome, first_recorded: &HashMap<String, DateTime<Utc>>) -> DateTime<Utc> {
    let own = match &outcome.kind {
        OutcomeKind::Row {
            sent_at,
            existed_by,
            ..
        } => (*sent_at).min(*existed_by),
        OutcomeKind::Quarantine(q) => q.sent_at.min(q.received_at).min(q.existed_by),
    };
    let recorded = first_recorded.get(outcome.message_id.entry(outcome.element).0);
    recorded.map_or(own, |at| own.min(*at))
}

/// When the ledger first recorded the (original) message ids of these outcomes.
async fn first_recorded(
    client: &impl GenericClient,
    outcomes: impl Iterator<Item = &Outcome>,
) -> Result<HashMap<String, DateTime<Utc>>, tokio_postgres::Error> {
    let mut ids: Vec<&str> = outcomes.map(|o| o.message_id.entry(o.element).0).collect();
    ids.sort_unstable();
    ids.dedup();
    Ok((client.query(FIRST_RECORDED, &[&ids]).await?.iter())
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// The user a row is of: the id as it arrived (a policy may store a pseudonym in its place).
pub(super) fn row_user(outcome: &Outcome) -> Option<&str> {
    match &outcome.kind {
        OutcomeKind::Row { login, .. } => Some(login.subject.as_deref().unwrap_or(&login.user_id)),
        OutcomeKind::Quarantine(_) => None,
    }
}

/// Every user an entry names, as stored.
pub(super) fn named_users(record: &QuarantineRecord) -> impl Iterator<Item = &str> {
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
