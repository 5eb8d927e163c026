//! `erase`: one data subject's erasure recorded (so later writes cannot undo it), their rows and
//! quarantine entries deleted, and the reveal audit rows that name them or show their masks
//! (under any key of the ring) neutralised, in one transaction with its audit row. An entry
//! that also holds other users' logins (a message of several quarantined whole) is kept without
//! the subject's logins ([`crate::mask::strip_subject`]).

use serde::Serialize;

use super::super::begin;
use super::super::SinkError;
use super::audit::Accountable;
use super::PgOperator;

/// What an erasure removed (or, dry, would remove).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Erased {
    /// Rows of `user_logins`.
    pub rows: u64,
    /// Entries of `quarantined_messages` of the user alone, deleted.
    pub quarantined: u64,
    /// Entries shared with other users, kept with the subject's logins taken out.
    pub stripped: u64,
    /// Rows of `mask_reveals` that named the user or showed one of their masks, neutralised.
    pub reveals: u64,
    /// The audit row (`None` for a dry run, which changes and records nothing).
    pub audit_id: Option<i64>,
}

/// The subject's masks, gathered before their rows go (for the reveal audit).
const SUBJECT_MASKS: &str = "SELECT coalesce(array_agg(DISTINCT m), '{}') FROM user_logins, \
     unnest(ARRAY[masked_ip, masked_device_id, masked_ip_network]) AS m \
     WHERE user_id = ANY($1) AND m IS NOT NULL";
/// The strings of the subject's rows' `extra_fields` (an address there is held as its row mask).
const SUBJECT_EXTRA_STRINGS: &str = "SELECT coalesce(array_agg(DISTINCT s #>> '{}'), '{}') \
     FROM user_logins, jsonb_path_query(extra_fields, 'strict $.** ? (@.type() == \"string\")') AS s \
     WHERE user_id = ANY($1) AND extra_fields IS NOT NULL";
/// Entries naming the subject in any form (`$1`), found by index, locked for the change.
const SUBJECT_ENTRIES: &str = "SELECT message_id, element, body_masked, user_id, \
     coalesce(user_ids, '{}') FROM quarantined_messages \
     WHERE user_ids && $1 OR user_id = ANY($1) FOR UPDATE";
const DELETE_ENTRY: &str =
    "DELETE FROM quarantined_messages WHERE message_id = $1 AND element = $2";
const STRIP_ENTRY: &str = "UPDATE quarantined_messages SET body_masked = $3, user_ids = $4, \
     user_id = CASE WHEN user_id = ANY($5) THEN ($4::text[])[1] ELSE user_id END \
     WHERE message_id = $1 AND element = $2";
/// The owner's function (migrations 16, 18, 20; by id and pseudonyms since 22), the only way anyone but the owner records an
/// erasure: it deletes the subject's rows, writes the erasure records (stamped by the server),
/// neutralises the reveal audit rows that name the subject (by fingerprint, or by id in rows
/// written before fingerprints) or show one of the given masks, and writes the erase's audit row
/// with the ids of the reveal rows it changed. Its audit id, how many reveal rows it changed and
/// how many rows it deleted.
const ERASE_AUDITED: &str = "SELECT audit_id, reveals, deleted \
     FROM login_etl_erase_subject_audited($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// A subject's `user_id` pseudonyms given the periods the table holds.
pub type PseudonymsOf<'f> = dyn Fn(&[String]) -> Vec<String> + Sync + 'f;

/// Whom an erasure is of, in every form stored data holds them (see `commands::erase`).
pub struct Subject<'a> {
    /// The user id.
    pub id: &'a str,
    /// What a policy stores in place of the id (`user_id = "pseudonym"`), given the periods the
    /// table holds: used when a policy recorded by `run` (read after the erase's lock) or
    /// `given_policy` stores `user_id` as a pseudonym.
    pub pseudonyms: &'a PseudonymsOf<'a>,
    /// What the policy given with `--policy` stores in `user_id` (`keep`, `hmac`, `hmac/month`).
    pub given_policy: Option<&'a str>,
    /// Keyed fingerprints of the id for the audit rows, active key first.
    pub fingerprints: &'a [String],
    /// Every form the id takes in stored data ([`crate::mask::user_id_forms`]).
    pub forms: &'a [String],
    /// What the erasure record holds ([`crate::mask::ErasureFingerprints::of`]).
    pub records: &'a [String],
    /// Every form a mask takes under the ring's keys ([`crate::mask::Generations::of`]).
    pub generations: &'a (dyn Fn(&str) -> Vec<String> + Sync),
}

impl std::fmt::Debug for Subject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subject(<redacted>)")
    }
}

/// Lock order with the writers (`sink/postgres/erased.rs`): an erase waits for the writes in
/// flight and holds new ones until it commits. SHARE ROW EXCLUSIVE, not SHARE: it also conflicts
/// with itself, so two erases run one after the other instead of deadlocking on their DELETEs.
const LOCK_WRITERS: &str = "LOCK TABLE user_logins IN SHARE ROW EXCLUSIVE MODE";
/// What each recorded policy stores in `user_id` (`keep`, `hmac`, `hmac/month`, …).
const USER_ID_STORES: &str = "SELECT columns->>'user_id' FROM privacy_policy";
/// Of these masks, those another user's row holds (a shared value).
const SHARED: &str =
    "SELECT m FROM unnest($1::text[]) AS m WHERE EXISTS (SELECT 1 FROM user_logins \
     WHERE (masked_ip = m OR masked_device_id = m OR masked_ip_network = m) \
     AND user_id <> ALL($2))";

impl PgOperator {
    /// Erase one data subject in one transaction: record the erasure (keyed fingerprints and the
    /// time, never the id) that every later write checks, delete their rows and quarantine
    /// entries (taking their logins out of entries shared with others), neutralise the reveal
    /// audit rows that name them or show one of their masks under any key of the ring, and audit
    /// it. A mask another user's rows also hold (a shared address or device) stays in the audit:
    /// it is that user's data too, and the evidence about them. With `dry_run`, count only and
    /// roll back. The ledger keeps the message ids, so a redelivered message is still skipped.
    pub async fn erase_user(
        &mut self,
        subject: &Subject<'_>,
        who: &Accountable,
        dry_run: bool,
    ) -> Result<Erased, SinkError> {
        let target = self.db.target().to_owned();
        let pg = |e: tokio_postgres::Error| super::super::error::classify(e, &target);
        let result = async {
            let client = self.db.client().await?;
            let tx = begin(client).await.map_err(pg)?;
            tx.batch_execute(LOCK_WRITERS).await.map_err(pg)?;
            // Entries whose user id looked like PII hold its fingerprint instead.
            let mut forms = subject.forms.to_vec();
            forms.push(subject.id.to_string());
            forms.extend(
                (subject.fingerprints.iter())
                    .map(|fp| format!("{}{fp}", crate::mask::USER_FINGERPRINT)),
            );
            // Read after the lock: a policy first used, or a login of a new period, committed
            // just before is found too.
            let mut stores: Vec<String> = (tx.query(USER_ID_STORES, &[]).await.map_err(pg)?)
                .iter()
                .filter_map(|r| r.get(0))
                .collect();
            stores.extend(subject.given_policy.map(str::to_string));
            let pseudonymised = stores.iter().any(|s| s.starts_with("hmac"));
            let periods: Vec<String> = match stores.iter().any(|s| s.starts_with("hmac/")) {
                true => (tx.query(super::privacy_report::STORED_PERIODS, &[]).await)
                    .map_err(pg)?
                    .iter()
                    .map(|r| r.get(0))
                    .collect(),
                false => Vec::new(),
            };
            let pseudonyms = match pseudonymised {
                true => (subject.pseudonyms)(&periods),
                false => Vec::new(),
            };
            let ids: Vec<&str> = std::iter::once(subject.id)
                .chain(pseudonyms.iter().map(String::as_str))
                .collect();
            let mut masks: Vec<String> = tx
                .query_one(SUBJECT_MASKS, &[&ids])
                .await
                .map_err(pg)?
                .get(0);
            let extra: Vec<String> = tx
                .query_one(SUBJECT_EXTRA_STRINGS, &[&ids])
                .await
                .map_err(pg)?
                .get(0);
            masks.extend(extra.into_iter().filter(|s| looks_masked(s)));
            let entries = erase_entries(&tx, &forms).await.map_err(pg)?;
            masks.extend(entries.strings.into_iter().filter(|s| looks_masked(s)));
            masks.sort();
            masks.dedup();
            let shared = tx.query(SHARED, &[&masks, &ids]).await.map_err(pg)?;
            let shared: Vec<String> = (shared.iter()).map(|r| r.get(0)).collect();
            let mut masks: Vec<String> = (masks.iter())
                .filter(|m| !shared.contains(m))
                .flat_map(|m| (subject.generations)(m))
                .collect();
            masks.sort();
            masks.dedup();
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
                &ids,
                &subject.records,
                &subject.fingerprints,
                &masks,
                &who.os_user,
                &who.actor,
                &who.reason,
                &(entries.deleted as i64),
                &(entries.stripped as i64),
            ];
            let audited = tx.query_one(ERASE_AUDITED, &params).await.map_err(pg)?;
            let (id, reveals, rows): (i64, i64, i64) =
                (audited.get(0), audited.get(1), audited.get(2));
            let erased = Erased {
                rows: rows.max(0) as u64,
                quarantined: entries.deleted,
                stripped: entries.stripped,
                reveals: reveals.max(0) as u64,
                audit_id: None,
            };
            if dry_run {
                tx.rollback().await.map_err(pg)?;
                return Ok(erased);
            }
            tx.commit().await.map_err(pg)?;
            Ok(Erased {
                audit_id: Some(id),
                ..erased
            })
        }
        .await;
        result.inspect_err(|_| self.db.forget_connection())
    }
}

/// Whether a stored string has a mask's shape (`<key id>:…`, or 64 hex digits unkeyed).
fn looks_masked(s: &str) -> bool {
    s.contains(':') || (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What [`erase_entries`] did.
struct ErasedEntries {
    deleted: u64,
    stripped: u64,
    /// The strings of the subject's logins in those entries (where masks that only ever sat in
    /// quarantine are).
    strings: Vec<String>,
}

/// Delete the entries naming only the subject; take the subject's logins out of those naming
/// others too.
async fn erase_entries(
    tx: &tokio_postgres::Transaction<'_>,
    forms: &[String],
) -> Result<ErasedEntries, tokio_postgres::Error> {
    let (mut deleted, mut stripped, mut strings) = (0, 0, Vec::new());
    for entry in tx.query(SUBJECT_ENTRIES, &[&forms]).await? {
        let (id, element): (String, i32) = (entry.get(0), entry.get(1));
        let body: Option<String> = entry.get(2);
        if let Some(body) = &body {
            strings.extend(crate::mask::subject_strings(body, forms));
        }
        let others: Vec<String> = (entry.get::<_, Vec<String>>(4).into_iter())
            .chain(entry.get::<_, Option<String>>(3))
            .filter(|u| !forms.contains(u))
            .collect();
        let kept = match body {
            Some(body) if !others.is_empty() => crate::mask::strip_subject(&body, forms),
            _ => crate::mask::Stripped::Whole,
        };
        match kept {
            crate::mask::Stripped::Kept(body) => {
                let mut others = others;
                others.sort();
                others.dedup();
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                    [&id, &element, &body, &others, &forms];
                tx.execute(STRIP_ENTRY, &params).await?;
                stripped += 1;
            }
            crate::mask::Stripped::Whole => {
                tx.execute(DELETE_ENTRY, &[&id, &element]).await?;
                deleted += 1;
            }
        }
    }
    Ok(ErasedEntries {
        deleted,
        stripped,
        strings,
    })
}
