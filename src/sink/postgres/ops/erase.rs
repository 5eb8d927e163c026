//! `erase`: one data subject's rows and quarantine entries deleted, and the reveal audit rows that
//! name them or show their masks neutralised, in one transaction with its audit row. An entry
//! that also holds other users' logins (a message of several quarantined whole) is kept without
//! the subject's logins ([`crate::mask::strip_subject`]).

use serde::Serialize;

use super::super::begin;
use super::super::SinkError;
use super::audit::{audit, Accountable};
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
     WHERE user_id = $1 AND m IS NOT NULL";
/// Entries naming the subject in any form (`$1`), found by index, locked for the change.
const SUBJECT_ENTRIES: &str = "SELECT message_id, element, body_masked, user_id, \
     coalesce(user_ids, '{}') FROM quarantined_messages \
     WHERE user_ids && $1 OR user_id = ANY($1) FOR UPDATE";
const DELETE_ENTRY: &str =
    "DELETE FROM quarantined_messages WHERE message_id = $1 AND element = $2";
const STRIP_ENTRY: &str = "UPDATE quarantined_messages SET body_masked = $3, user_ids = $4, \
     user_id = CASE WHEN user_id = ANY($5) THEN ($4::text[])[1] ELSE user_id END \
     WHERE message_id = $1 AND element = $2";
/// Reveal audit rows that name the subject (by fingerprint, or by id in rows written before
/// fingerprints) or show one of their masks: the selector and those masks are removed.
const NEUTRALISE_REVEALS: &str = "UPDATE mask_reveals SET \
     masks = ARRAY(SELECT m FROM unnest(masks) AS m WHERE m <> ALL($1)), \
     selector = CASE WHEN selector = ANY($2) OR subject = ANY($3) THEN 'erased subject' ELSE selector END, \
     subject = CASE WHEN subject = ANY($3) THEN NULL ELSE subject END \
     WHERE masks && $1 OR selector = ANY($2) OR subject = ANY($3)";

impl PgOperator {
    /// Delete one user's rows and quarantine entries (taking the user's logins out of entries
    /// shared with others), neutralise the reveal audit rows that name them or show their masks,
    /// and audit it (with `subjects[0]`, a keyed fingerprint of the user id under the active key,
    /// never the id; `subjects` holds it under every key), in one transaction; with `dry_run`,
    /// count only and roll back. `forms`: every form the id takes in stored data
    /// ([`crate::mask::user_id_forms`]). The ledger keeps the message ids, so a redelivered
    /// message of that user is still skipped.
    pub async fn erase_user(
        &mut self,
        user_id: &str,
        subjects: &[String],
        forms: &[String],
        who: &Accountable,
        dry_run: bool,
    ) -> Result<Erased, SinkError> {
        let target = self.db.target().to_owned();
        let pg = |e: tokio_postgres::Error| super::super::error::classify(e, &target);
        let result = async {
            let client = self.db.client().await?;
            let tx = begin(client).await.map_err(pg)?;
            // Entries whose user id looked like PII hold its fingerprint instead.
            let mut forms = forms.to_vec();
            forms.push(user_id.to_string());
            forms.extend(
                (subjects.iter()).map(|fp| format!("{}{fp}", crate::mask::USER_FINGERPRINT)),
            );
            let masks: Vec<String> = tx
                .query_one(SUBJECT_MASKS, &[&user_id])
                .await
                .map_err(pg)?
                .get(0);
            let rows = tx
                .execute("DELETE FROM user_logins WHERE user_id = $1", &[&user_id])
                .await
                .map_err(pg)?;
            let (quarantined, stripped) = erase_entries(&tx, &forms).await.map_err(pg)?;
            let mut selectors = vec![format!("user_id = {user_id:?}")];
            for mask in &masks {
                selectors.push(format!("masked_ip = {mask:?}"));
                selectors.push(format!("masked_device_id = {mask:?}"));
            }
            let reveals = tx
                .execute(NEUTRALISE_REVEALS, &[&masks, &selectors, &subjects])
                .await
                .map_err(pg)?;
            let erased = Erased {
                rows,
                quarantined,
                stripped,
                reveals,
                audit_id: None,
            };
            if dry_run {
                tx.rollback().await.map_err(pg)?;
                return Ok(erased);
            }
            let detail = serde_json::json!({
                "subject": subjects.first(),
                "reveals_neutralised": reveals,
                "quarantine_entries_stripped": stripped,
            });
            let id = audit(&tx, "erase", who, rows, quarantined, detail)
                .await
                .map_err(pg)?;
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

/// Delete the entries naming only the subject; take the subject's logins out of those naming
/// others too. (deleted, stripped).
async fn erase_entries(
    tx: &tokio_postgres::Transaction<'_>,
    forms: &[String],
) -> Result<(u64, u64), tokio_postgres::Error> {
    let (mut deleted, mut stripped) = (0, 0);
    for entry in tx.query(SUBJECT_ENTRIES, &[&forms]).await? {
        let (id, element): (String, i32) = (entry.get(0), entry.get(1));
        let body: Option<String> = entry.get(2);
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
    Ok((deleted, stripped))
}
