//! `erase`: one data subject's rows and quarantine entries deleted, and the reveal audit rows that
//! name them or show their masks neutralised, in one transaction with its audit row.

use serde::Serialize;

use super::super::begin;
use super::super::{PgSink, SinkError};
use super::audit::{audit, Accountable};

/// What an erasure removed (or, dry, would remove).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Erased {
    /// Rows of `user_logins`.
    pub rows: u64,
    /// Entries of `quarantined_messages` of the user.
    pub quarantined: u64,
    /// Rows of `mask_reveals` that named the user or showed one of their masks, neutralised.
    pub reveals: u64,
    /// The audit row (`None` for a dry run, which changes and records nothing).
    pub audit_id: Option<i64>,
}

/// The subject's masks, gathered before their rows go (for the reveal audit).
const SUBJECT_MASKS: &str = "SELECT coalesce(array_agg(DISTINCT m), '{}') FROM user_logins, \
     unnest(ARRAY[masked_ip, masked_device_id, masked_ip_network]) AS m \
     WHERE user_id = $1 AND m IS NOT NULL";
/// Reveal audit rows that name the subject (by fingerprint, or by id in rows written before
/// fingerprints) or show one of their masks: the selector and those masks are removed.
const NEUTRALISE_REVEALS: &str = "UPDATE mask_reveals SET \
     masks = ARRAY(SELECT m FROM unnest(masks) AS m WHERE m <> ALL($1)), \
     selector = CASE WHEN selector = ANY($2) OR subject = ANY($3) THEN 'erased subject' ELSE selector END, \
     subject = CASE WHEN subject = ANY($3) THEN NULL ELSE subject END \
     WHERE masks && $1 OR selector = ANY($2) OR subject = ANY($3)";

impl PgSink {
    /// Delete one user's rows and quarantine entries, neutralise the reveal audit rows that name
    /// them or show their masks, and audit it (with `subjects[0]`, a keyed fingerprint of the user
    /// id under the active key, never the id; `subjects` holds it under every key), in one transaction; with `dry_run`, count only and roll back. The ledger
    /// keeps the message ids, so a redelivered message of that user is still skipped.
    pub async fn erase_user(
        &mut self,
        user_id: &str,
        subjects: &[String],
        who: &Accountable,
        dry_run: bool,
    ) -> Result<Erased, SinkError> {
        let target = self.target.clone();
        let pg = |e: tokio_postgres::Error| super::super::error::classify(e, &target);
        let result = async {
            let client = self.client().await?;
            let tx = begin(client).await.map_err(pg)?;
            // Entries whose user id looked like PII hold its fingerprint instead.
            let fingerprinted: Vec<String> = subjects
                .iter()
                .map(|fp| format!("{}{fp}", crate::mask::USER_FINGERPRINT))
                .collect();
            let masks: Vec<String> = tx
                .query_one(SUBJECT_MASKS, &[&user_id])
                .await
                .map_err(pg)?
                .get(0);
            let rows = tx
                .execute("DELETE FROM user_logins WHERE user_id = $1", &[&user_id])
                .await
                .map_err(pg)?;
            let quarantined = tx
                .execute(
                    "DELETE FROM quarantined_messages WHERE user_id = $1 OR user_id = ANY($2)",
                    &[&user_id, &fingerprinted],
                )
                .await
                .map_err(pg)?;
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
                reveals,
                audit_id: None,
            };
            if dry_run {
                tx.rollback().await.map_err(pg)?;
                return Ok(erased);
            }
            let detail =
                serde_json::json!({ "subject": subjects.first(), "reveals_neutralised": reveals });
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
        result.inspect_err(|_| self.client = None)
    }
}
