//! Data-subject and data-lifecycle operations on the masked data: erasure of one user, retention,
//! key usage, and the row access re-keying needs. Each change is audited in `privacy_operations`
//! (who, when, why, counts — never a value, never the erased user id) in the same transaction.

use chrono::NaiveDate;
use serde::Serialize;

use super::{PgSink, SinkError};

/// Who asks, and why; stored in `privacy_operations`.
#[derive(Debug, Clone)]
pub struct Accountable {
    /// The operating-system user running the command.
    pub os_user: String,
    /// Who is accountable (defaults to the OS user).
    pub actor: String,
    /// Why (ticket, legal request, policy).
    pub reason: String,
}

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

/// Rows per key id in one column, with the dates they span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyUsage {
    /// `masked_ip`, `masked_device_id`, `masked_ip_network` or `quarantined_messages`.
    pub column: String,
    /// The key id masks start with (`none` for unkeyed sha256 masks).
    pub key_id: String,
    /// Rows (or quarantine entries) using it.
    pub rows: i64,
    /// First `create_date` (quarantine: `received_at`'s date).
    pub first: Option<NaiveDate>,
    /// Last such date.
    pub last: Option<NaiveDate>,
}

/// A row whose reversible masks are under another key than the target.
#[derive(Debug, Clone)]
pub struct RekeyRow {
    pub(crate) table: u32,
    pub(crate) ctid: String,
    /// aes-siv `masked_ip`, if under an old key.
    pub masked_ip: Option<String>,
    /// aes-siv `masked_device_id`, if under an old key.
    pub masked_device_id: Option<String>,
    /// ipcrypt-pfx `masked_ip_network`, if under an old key.
    pub masked_ip_network: Option<String>,
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

/// Whether a mask is under `key` (and, with `from`, under that one only).
const OLD_KEY: &str =
    "(split_part({c}, ':', 1) <> $1 AND ($2::text IS NULL OR split_part({c}, ':', 1) = $2) \
                       AND {c} LIKE '%:%' AND {reversible})";

fn old_key(column: &str, reversible: &str) -> String {
    OLD_KEY
        .replace("{reversible}", reversible)
        .replace("{c}", column)
}

/// aes-siv masks are `<id>:<base64url>`; hmac ones are `<id>:` + 64 hex characters.
const SIV: &str = "NOT ({c} ~ '^[^:]+:[0-9a-f]{64}$')";
/// ipcrypt-pfx network masks are `<id>:pfx:<address>`.
const PFX: &str = "({c} LIKE '%:pfx:%')";

pub(super) async fn audit(
    tx: &tokio_postgres::Transaction<'_>,
    operation: &str,
    who: &Accountable,
    rows: u64,
    quarantined: u64,
    detail: serde_json::Value,
) -> Result<i64, tokio_postgres::Error> {
    let row = tx
        .query_one(
            "INSERT INTO privacy_operations (operation, os_user, actor, reason, rows, quarantined, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb) RETURNING id",
            &[
                &operation,
                &who.os_user,
                &who.actor,
                &who.reason,
                &(rows as i64),
                &(quarantined as i64),
                &detail.to_string(),
            ],
        )
        .await?;
    Ok(row.get(0))
}

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
        let pg = |e: tokio_postgres::Error| super::error::classify(e, &target);
        let result = async {
            let client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
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

    /// Per column and key id: how many rows, from which date to which. An old key can be retired
    /// once it has no rows left here.
    pub async fn key_usage(&mut self) -> Result<Vec<KeyUsage>, SinkError> {
        let per_column = |column: &str| {
            format!(
                "SELECT '{column}', CASE WHEN {column} LIKE '%:%' THEN split_part({column}, ':', 1) ELSE 'none' END,
                        count(*), min(create_date), max(create_date)
                 FROM user_logins WHERE {column} IS NOT NULL GROUP BY 2"
            )
        };
        let sql = format!(
            "{} UNION ALL {} UNION ALL {} UNION ALL
             SELECT 'quarantined_messages', key_id, count(*),
                    min(received_at)::date, max(received_at)::date
             FROM quarantined_messages WHERE key_id IS NOT NULL GROUP BY 2
             ORDER BY 1, 2",
            per_column("masked_ip"),
            per_column("masked_device_id"),
            per_column("masked_ip_network"),
        );
        let result = self.client().await?.query(&sql, &[]).await;
        let rows = result.map_err(|e| self.on_error(e))?;
        Ok(rows
            .iter()
            .map(|r| KeyUsage {
                column: r.get(0),
                key_id: r.get(1),
                rows: r.get(2),
                first: r.get(3),
                last: r.get(4),
            })
            .collect())
    }

    /// Up to `batch` rows with a reversible mask under another key than `to` (and, with `from`,
    /// under that key), locked until [`rekey_commit`](Self::rekey_commit) in the same
    /// transaction: see `commands::rekey`.
    pub async fn rekey_batch(
        &mut self,
        to: &str,
        from: Option<&str>,
        batch: i64,
    ) -> Result<(tokio_postgres::Transaction<'_>, Vec<RekeyRow>), SinkError> {
        let target = self.target.clone();
        let pg = |e: tokio_postgres::Error| super::error::classify(e, &target);
        let siv = |c: &str| old_key(c, &SIV.replace("{c}", c));
        let pfx = old_key(
            "masked_ip_network",
            &PFX.replace("{c}", "masked_ip_network"),
        );
        let sql = format!(
            "SELECT tableoid::oid, ctid::text,
                    CASE WHEN {ip} THEN masked_ip END,
                    CASE WHEN {device} THEN masked_device_id END,
                    CASE WHEN {pfx} THEN masked_ip_network END
             FROM user_logins WHERE {ip} OR {device} OR {pfx}
             LIMIT $3 FOR UPDATE SKIP LOCKED",
            ip = siv("masked_ip"),
            device = siv("masked_device_id"),
        );
        let client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let rows = tx
            .query(&sql, &[&to, &from, &batch])
            .await
            .map_err(pg)?
            .iter()
            .map(|r| RekeyRow {
                table: r.get(0),
                ctid: r.get(1),
                masked_ip: r.get(2),
                masked_device_id: r.get(3),
                masked_ip_network: r.get(4),
            })
            .collect();
        Ok((tx, rows))
    }

    /// How many hmac-sha256 masks are under another key than `to`: they cannot be re-keyed
    /// without the raw values.
    pub async fn one_way_masks_not_under(&mut self, to: &str) -> Result<i64, SinkError> {
        let hmac =
            |c: &str| format!("({c} ~ '^[^:]+:[0-9a-f]{{64}}$' AND split_part({c}, ':', 1) <> $1)");
        let sql = format!(
            "SELECT count(*) FILTER (WHERE {}) + count(*) FILTER (WHERE {})
                  + count(*) FILTER (WHERE {}) FROM user_logins",
            hmac("masked_ip"),
            hmac("masked_device_id"),
            hmac("masked_ip_network"),
        );
        let result = self.client().await?.query_one(&sql, &[&to]).await;
        Ok(result.map_err(|e| self.on_error(e))?.get(0))
    }
}

/// Write a re-keyed batch and add it to the audit row `audit_id` (created by [`start_rekey`]),
/// then commit: a batch is re-keyed and counted entirely or not at all.
pub async fn rekey_commit(
    tx: tokio_postgres::Transaction<'_>,
    rows: &[RekeyRow],
    audit_id: i64,
) -> Result<(), SinkError> {
    let pg = |e: tokio_postgres::Error| super::error::classify(e, "the database");
    for row in rows {
        tx.execute(
            "UPDATE user_logins SET
                 masked_ip = coalesce($3, masked_ip),
                 masked_device_id = coalesce($4, masked_device_id),
                 masked_ip_network = coalesce($5, masked_ip_network)
             WHERE tableoid = $1 AND ctid = $2::text::tid",
            &[
                &row.table,
                &row.ctid,
                &row.masked_ip,
                &row.masked_device_id,
                &row.masked_ip_network,
            ],
        )
        .await
        .map_err(pg)?;
    }
    tx.execute(
        "UPDATE privacy_operations SET rows = rows + $2 WHERE id = $1",
        &[&audit_id, &(rows.len() as i64)],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)
}

impl PgSink {
    /// The audit row a re-keying run adds its batches to.
    pub async fn start_rekey(
        &mut self,
        who: &Accountable,
        to: &str,
        from: Option<&str>,
    ) -> Result<i64, SinkError> {
        let target = self.target.clone();
        let pg = |e: tokio_postgres::Error| super::error::classify(e, &target);
        let result = async {
            let client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
            let detail = serde_json::json!({ "to": to, "from": from });
            let id = audit(&tx, "rekey", who, 0, 0, detail).await.map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(id)
        }
        .await;
        result.inspect_err(|_| self.client = None)
    }
}
