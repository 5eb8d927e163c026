//! `rekey`: the rows whose reversible masks are under an older key, in locked batches, and the
//! write of each re-encrypted batch with its share of the run's audit row.

use super::super::begin;
use super::super::SinkError;
use super::audit::{audit, Accountable};
use super::PgOperator;
use crate::mask::{sql_is_hmac_mask, sql_is_siv_shaped};

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
    /// `extra_fields` (JSON text), if it holds an aes-siv mask under an old key.
    pub extra_fields: Option<String>,
}

/// Whether a mask is under `key` (and, with `from`, under that one only). A mask under a period
/// key (`@2026-12:…`) is never re-keyed: its key is re-wrapped instead ([`PgOperator::rewrap_period_keys`]).
const OLD_KEY: &str =
    "(split_part({c}, ':', 1) <> $1 AND ($2::text IS NULL OR split_part({c}, ':', 1) = $2) \
                       AND {c} LIKE '%:%' AND {c} NOT LIKE '@%' AND {reversible})";

fn old_key(column: &str, reversible: &str) -> String {
    OLD_KEY
        .replace("{reversible}", reversible)
        .replace("{c}", column)
}

/// aes-siv masks: keyed (`<id>:…`) and not hmac ones (`mask::strategy_of` decides).
fn siv(column: &str) -> String {
    format!("NOT {}", sql_is_hmac_mask(column))
}
/// ipcrypt-pfx network masks are `<id>:pfx:<address>`.
const PFX: &str = "({c} LIKE '%:pfx:%')";

/// `extra_fields` holding a string that is an aes-siv mask under one of the old key ids (`$4`,
/// ids of the ring; keyed fingerprints `#str(n) <id>:…` start with `#` and are one-way; a
/// producer's text not shaped as a mask is not one).
fn extra_old() -> String {
    let item = "(item #>> '{}')";
    format!(
        "(extra_fields IS NOT NULL AND EXISTS (
             SELECT 1 FROM jsonb_path_query(extra_fields, 'strict $.**') AS v(item)
             WHERE jsonb_typeof(item) = 'string' AND {}
               AND split_part({item}, ':', 1) = ANY($4) AND NOT {}))",
        sql_is_siv_shaped(item),
        sql_is_hmac_mask(item)
    )
}

impl PgOperator {
    /// Up to `batch` rows with a reversible mask under another key than `to` (and, with `from`,
    /// under that key) in a column, or in `extra_fields` under one of the `old` key ids, locked
    /// until [`rekey_commit`](Self::rekey_commit) in the same transaction: see `commands::rekey`.
    pub async fn rekey_batch(
        &mut self,
        to: &str,
        from: Option<&str>,
        old: &[String],
        batch: i64,
    ) -> Result<(tokio_postgres::Transaction<'_>, Vec<RekeyRow>), SinkError> {
        let target = self.db.target().to_owned();
        let pg = |e: tokio_postgres::Error| super::super::error::classify(e, &target);
        let siv = |c: &str| old_key(c, &siv(c));
        let pfx = old_key(
            "masked_ip_network",
            &PFX.replace("{c}", "masked_ip_network"),
        );
        let sql = format!(
            "SELECT tableoid::oid, ctid::text,
                    CASE WHEN {ip} THEN masked_ip END,
                    CASE WHEN {device} THEN masked_device_id END,
                    CASE WHEN {pfx} THEN masked_ip_network END,
                    CASE WHEN {extra} THEN extra_fields::text END
             FROM user_logins WHERE {ip} OR {device} OR {pfx} OR {extra}
             LIMIT $3 FOR UPDATE SKIP LOCKED",
            ip = siv("masked_ip"),
            device = siv("masked_device_id"),
            extra = extra_old(),
        );
        let client = self.db.client().await?;
        let tx = begin(client).await.map_err(pg)?;
        // The writers' lock first, as they take it: `FOR UPDATE` alone would let an erase take
        // its table lock between this batch's row locks and its UPDATE, and deadlock with it.
        (tx.batch_execute(super::super::erased::LOCK).await).map_err(pg)?;
        let rows = tx
            .query(&sql, &[&to, &from, &batch, &old])
            .await
            .map_err(pg)?
            .iter()
            .map(|r| RekeyRow {
                table: r.get(0),
                ctid: r.get(1),
                masked_ip: r.get(2),
                masked_device_id: r.get(3),
                masked_ip_network: r.get(4),
                extra_fields: r.get(5),
            })
            .collect();
        Ok((tx, rows))
    }

    /// How many hmac-sha256 masks are under another key than `to`: they cannot be re-keyed
    /// without the raw values.
    pub async fn one_way_masks_not_under(&mut self, to: &str) -> Result<i64, SinkError> {
        let hmac = |c: &str| {
            format!(
                "({} AND split_part({c}, ':', 1) <> $1)",
                sql_is_hmac_mask(c)
            )
        };
        let sql = format!(
            "SELECT count(*) FILTER (WHERE {}) + count(*) FILTER (WHERE {})
                  + count(*) FILTER (WHERE {}) FROM user_logins",
            hmac("masked_ip"),
            hmac("masked_device_id"),
            hmac("masked_ip_network"),
        );
        Ok(self.db.query_one(&sql, &[&to]).await?.get(0))
    }
}

/// Write a re-keyed batch and add it to the audit row `audit_id` (created by [`start_rekey`]),
/// then commit: a batch is re-keyed and counted entirely or not at all.
pub async fn rekey_commit(
    tx: tokio_postgres::Transaction<'_>,
    rows: &[RekeyRow],
    audit_id: i64,
) -> Result<(), SinkError> {
    let pg = |e: tokio_postgres::Error| super::super::error::classify(e, "the database");
    for row in rows {
        tx.execute(
            "UPDATE user_logins SET
                 masked_ip = coalesce($3, masked_ip),
                 masked_device_id = coalesce($4, masked_device_id),
                 masked_ip_network = coalesce($5, masked_ip_network),
                 extra_fields = coalesce($6::text::jsonb, extra_fields)
             WHERE tableoid = $1 AND ctid = $2::text::tid",
            &[
                &row.table,
                &row.ctid,
                &row.masked_ip,
                &row.masked_device_id,
                &row.masked_ip_network,
                &row.extra_fields,
            ],
        )
        .await
        .map_err(pg)?;
    }
    tx.execute(
        // The owner's function (migration 15): nobody else may change an audit row.
        "SELECT login_etl_count_rekeyed($1, $2)",
        &[&audit_id, &(rows.len() as i64)],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)
}

impl PgOperator {
    /// The audit row a re-keying run adds its batches to.
    pub async fn start_rekey(
        &mut self,
        who: &Accountable,
        to: &str,
        from: Option<&str>,
    ) -> Result<i64, SinkError> {
        let target = self.db.target().to_owned();
        let pg = |e: tokio_postgres::Error| super::super::error::classify(e, &target);
        let result = async {
            let client = self.db.client().await?;
            let tx = begin(client).await.map_err(pg)?;
            let detail = serde_json::json!({ "to": to, "from": from });
            let id = audit(&tx, "rekey", who, 0, 0, detail).await.map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(id)
        }
        .await;
        result.inspect_err(|_| self.db.forget_connection())
    }
}
