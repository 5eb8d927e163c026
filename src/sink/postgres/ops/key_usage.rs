//! `report keys` and `retire-key`: which key ids still mask which rows (and quarantine entries).

use chrono::NaiveDate;
use serde::Serialize;

use super::super::SinkError;
use super::PgOperator;

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

impl PgOperator {
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
        let rows = self.db.query(&sql, &[]).await?;
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

    /// Rows whose `extra_fields` hold a mask under `key_id` (an address or device recurring in an
    /// unknown field): `retire-key` refuses while any remain, as for the columns. Keyed
    /// fingerprints there (`#str(n) <id>:…`) are one-way, like the quarantine's, and not counted;
    /// nor is a producer's text not shaped as a mask ([`crate::mask::is_siv_shaped`]). hmac masks
    /// are counted: one-way, but made with the key.
    pub async fn extra_fields_under(&mut self, key_id: &str) -> Result<i64, SinkError> {
        let item = "(item #>> '{}')";
        let sql = format!(
            "SELECT count(*) FROM user_logins WHERE extra_fields IS NOT NULL AND EXISTS (
             SELECT 1 FROM jsonb_path_query(extra_fields, 'strict $.**') AS v(item)
             WHERE jsonb_typeof(item) = 'string' AND split_part({item}, ':', 1) = $1
               AND ({} OR {}))",
            crate::mask::sql_is_siv_shaped(item),
            crate::mask::sql_is_hmac_mask(item),
        );
        Ok(self.db.query_one(&sql, &[&key_id]).await?.get(0))
    }

    /// Rows whose `user_id` is a pseudonym made under `key_id` (`<id>:` and 64 hex digits; only
    /// asked when a recorded policy pseudonymises `user_id`): one-way, so they cannot be re-keyed,
    /// and `erase` finds them only while the key is in the ring.
    pub async fn user_id_pseudonyms_under(&mut self, key_id: &str) -> Result<i64, SinkError> {
        let sql = format!(
            "SELECT count(*) FROM user_logins WHERE split_part(user_id, ':', 1) = $1 AND {}",
            crate::mask::sql_is_hmac_mask("user_id")
        );
        Ok(self.db.query_one(&sql, &[&key_id]).await?.get(0))
    }

    /// Erasures whose every record is under `key_id` (none under a key of `remaining`): retiring
    /// the key would void them, as no writer could compute their fingerprints any more. An
    /// erasure is the records one `erase` wrote, which share its time (erasing again moves them
    /// all, and adds the ring's new keys).
    pub async fn erasures_only_under(
        &mut self,
        key_id: &str,
        remaining: &[String],
    ) -> Result<i64, SinkError> {
        const SQL: &str = "SELECT count(*) FROM (SELECT erased_at FROM erased_subjects \
             GROUP BY erased_at HAVING bool_or(split_part(fingerprint, ':', 1) = $1) \
             AND NOT bool_or(split_part(fingerprint, ':', 1) = ANY($2))) AS only_under";
        Ok(self.db.query_one(SQL, &[&key_id, &remaining]).await?.get(0))
    }
}
