//! The privileges `run` needs, asked of the role itself (`has_table_privilege`,
//! `has_column_privilege`): `check` lists what is missing before `run` would fail on it.
//! docs/least-privilege.sql grants exactly these.

use super::{PgConnection, SinkError};

/// One privilege `run` needs (or one it should not have).
#[derive(Debug, Clone)]
pub(crate) struct Privilege {
    /// e.g. `INSERT on user_logins`.
    pub(crate) what: &'static str,
    /// Whether the role has it.
    pub(crate) granted: bool,
}

/// (privilege text, SQL deciding it): what `run` needs, per docs/least-privilege.sql.
const NEEDED: &[(&str, &str)] = &[
    (
        "INSERT on user_logins",
        "has_table_privilege('user_logins', 'INSERT')",
    ),
    (
        "INSERT on processed_messages",
        "has_table_privilege('processed_messages', 'INSERT')",
    ),
    (
        "SELECT (message_id) on processed_messages",
        "has_column_privilege('processed_messages', 'message_id', 'SELECT')",
    ),
    (
        "INSERT on quarantined_messages",
        "has_table_privilege('quarantined_messages', 'INSERT')",
    ),
    (
        "SELECT (message_id, element, reason_code) on quarantined_messages",
        "has_column_privilege('quarantined_messages', 'element', 'SELECT') \
         AND has_column_privilege('quarantined_messages', 'reason_code', 'SELECT')",
    ),
    (
        "SELECT, UPDATE (outcome) on processed_messages (redeliveries of quarantined messages)",
        "has_column_privilege('processed_messages', 'outcome', 'SELECT, UPDATE')",
    ),
    (
        "SELECT (attempts, resolved_at), UPDATE (attempts, reason, resolved_at, …) on quarantined_messages",
        "has_column_privilege('quarantined_messages', 'attempts', 'SELECT, UPDATE') \
         AND has_column_privilege('quarantined_messages', 'resolved_at', 'SELECT, UPDATE') \
         AND has_column_privilege('quarantined_messages', 'last_attempt_at', 'UPDATE') \
         AND has_column_privilege('quarantined_messages', 'reason_code', 'UPDATE') \
         AND has_column_privilege('quarantined_messages', 'reason', 'UPDATE') \
         AND has_column_privilege('quarantined_messages', 'receive_count', 'UPDATE')",
    ),
    (
        "INSERT, SELECT (name) on unknown_fields",
        "has_table_privilege('unknown_fields', 'INSERT') \
         AND has_column_privilege('unknown_fields', 'name', 'SELECT')",
    ),
    (
        "INSERT, SELECT on mask_key_fingerprints",
        "has_table_privilege('mask_key_fingerprints', 'INSERT, SELECT')",
    ),
    (
        "SELECT, INSERT, UPDATE (last_used) on privacy_policy",
        "has_table_privilege('privacy_policy', 'SELECT, INSERT') \
         AND has_column_privilege('privacy_policy', 'last_used', 'UPDATE')",
    ),
    (
        "SELECT, INSERT on period_keys and SELECT on shred_horizons (a policy's period keys)",
        "has_table_privilege('period_keys', 'SELECT') \
         AND has_column_privilege('period_keys', 'wrapped', 'INSERT') \
         AND has_table_privilege('shred_horizons', 'SELECT')",
    ),
    (
        "INSERT, UPDATE, DELETE on poison_attempts",
        "has_table_privilege('poison_attempts', 'INSERT, UPDATE, DELETE')",
    ),
    (
        "DELETE, UPDATE (processed_at) on processed_messages (ledger pruning)",
        "has_table_privilege('processed_messages', 'DELETE') AND has_column_privilege('processed_messages', 'processed_at', 'UPDATE')",
    ),
    (
        "INSERT, SELECT and UPDATE (logins, chunks, first_read_at, finished_at) on s3_objects (S3 progress)",
        "has_column_privilege('s3_objects', 'object_id', 'INSERT, SELECT') \
         AND has_column_privilege('s3_objects', 'logins', 'SELECT, UPDATE') \
         AND has_column_privilege('s3_objects', 'chunks', 'SELECT, UPDATE') \
         AND has_column_privilege('s3_objects', 'first_read_at', 'SELECT, UPDATE') \
         AND has_column_privilege('s3_objects', 'finished_at', 'SELECT, UPDATE')",
    ),
    (
        "SELECT on login_etl_schema_migrations",
        "has_table_privilege('login_etl_schema_migrations', 'SELECT')",
    ),
];
/// More than `run` needs: reading login rows back.
const EXTRA: (&str, &str) = (
    "SELECT on user_logins (more than run needs: it can read login rows)",
    "has_table_privilege('user_logins', 'SELECT')",
);

impl PgConnection {
    /// The privileges `run` needs, each granted or not, and the one it should not have.
    pub(crate) async fn run_privileges(
        &mut self,
    ) -> Result<(Vec<Privilege>, Privilege), SinkError> {
        let checks: Vec<&str> = NEEDED
            .iter()
            .map(|(_, sql)| *sql)
            .chain([EXTRA.1])
            .collect();
        let sql = format!("SELECT {}", checks.join(", "));
        let row = self.query_one(&sql, &[]).await?;
        let needed = NEEDED
            .iter()
            .enumerate()
            .map(|(i, (what, _))| Privilege {
                what,
                granted: row.get(i),
            })
            .collect();
        let extra = Privilege {
            what: EXTRA.0,
            granted: row.get(NEEDED.len()),
        };
        Ok((needed, extra))
    }
}
