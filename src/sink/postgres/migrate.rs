//! Schema migrations: the numbered files of `migrations/`, embedded in the binary, each applied
//! once and recorded with a SHA-256 of its text, under an advisory lock so consumers starting
//! together don't race.
//!
//! A migration file edited after it was applied is refused (its checksum no longer matches): the
//! databases that ran the old text would silently differ from new ones. When the schema is
//! current nothing but a read happens, so `run` works under a role that may not create tables.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, GenericClient};

use super::begin;
use super::{PgConnection, SinkError};

/// (version, name, SQL), in order.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "user_logins",
        include_str!("../../../migrations/0001_user_logins.sql"),
    ),
    (
        2,
        "ledger_and_quarantine",
        include_str!("../../../migrations/0002_ledger_and_quarantine.sql"),
    ),
    (
        3,
        "duplicates_and_reveal_audit",
        include_str!("../../../migrations/0003_duplicates_and_reveal_audit.sql"),
    ),
    (
        4,
        "poison_attempts",
        include_str!("../../../migrations/0004_poison_attempts.sql"),
    ),
    (
        5,
        "ledger_retention",
        include_str!("../../../migrations/0005_ledger_retention.sql"),
    ),
    (
        6,
        "privacy_v2",
        include_str!("../../../migrations/0006_privacy_v2.sql"),
    ),
    (
        7,
        "fail_closed_privacy",
        include_str!("../../../migrations/0007_fail_closed_privacy.sql"),
    ),
    (
        8,
        "sent_at",
        include_str!("../../../migrations/0008_sent_at.sql"),
    ),
    (
        9,
        "logins_per_message",
        include_str!("../../../migrations/0009_logins_per_message.sql"),
    ),
    (
        10,
        "unknown_fields",
        include_str!("../../../migrations/0010_unknown_fields.sql"),
    ),
    (
        11,
        "key_fingerprints",
        include_str!("../../../migrations/0011_key_fingerprints.sql"),
    ),
    (
        12,
        "quarantine_user_ids",
        include_str!("../../../migrations/0012_quarantine_user_ids.sql"),
    ),
    (
        13,
        "redrive",
        include_str!("../../../migrations/0013_redrive.sql"),
    ),
    (
        14,
        "erasure_records",
        include_str!("../../../migrations/0014_erasure_records.sql"),
    ),
    (
        15,
        "audit_stamped_by_server",
        include_str!("../../../migrations/0015_audit_stamped_by_server.sql"),
    ),
    (
        16,
        "erase_audited",
        include_str!("../../../migrations/0016_erase_audited.sql"),
    ),
    (
        17,
        "redrive_audited",
        include_str!("../../../migrations/0017_redrive_audited.sql"),
    ),
    (
        18,
        "erasure_recorded_by_owner",
        include_str!("../../../migrations/0018_erasure_recorded_by_owner.sql"),
    ),
    (
        19,
        "s3_object_progress",
        include_str!("../../../migrations/0019_s3_object_progress.sql"),
    ),
    (
        20,
        "erasure_review",
        include_str!("../../../migrations/0020_erasure_review.sql"),
    ),
    (
        21,
        "privacy_policy",
        include_str!("../../../migrations/0021_privacy_policy.sql"),
    ),
    (
        22,
        "period_keys",
        include_str!("../../../migrations/0022_period_keys.sql"),
    ),
];

/// Arbitrary constant for `pg_advisory_xact_lock`: "loginetl".
const MIGRATION_LOCK: i64 = 0x6c6f_6769_6e65_746c;

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Applied versions and their recorded checksums (`None` for rows from before checksums were
/// kept); `None` before the first migration. `to_jsonb` reads a checksum column that may not
/// exist yet without failing.
async fn applied(
    client: &impl GenericClient,
) -> Result<Option<HashMap<i32, Option<String>>>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('login_etl_schema_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT version, to_jsonb(m) ->> 'checksum' FROM login_etl_schema_migrations m",
            &[],
        )
        .await?;
    Ok(Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
}

/// [`applied`] in a transaction of its own: its statements stay on one server connection behind
/// a transaction-mode pooler (PgBouncer, RDS Proxy).
async fn applied_in_transaction(
    client: &mut Client,
) -> Result<Option<HashMap<i32, Option<String>>>, tokio_postgres::Error> {
    let tx = begin(client).await?;
    let applied = applied(&tx).await?;
    tx.commit().await?;
    Ok(applied)
}

/// Refuse a migration whose file changed since it was applied.
fn verify(applied: &HashMap<i32, Option<String>>) -> Result<(), SinkError> {
    for (version, name, sql) in MIGRATIONS {
        if let Some(Some(recorded)) = applied.get(version) {
            if *recorded != checksum(sql) {
                return Err(SinkError::Schema(format!(
                    "migration {version} ({name}) was edited after it was applied to this \
                     database; restore its original text and put the change in a new migration"
                )));
            }
        }
    }
    Ok(())
}

/// Whether nothing is left to do: every migration applied with its checksum recorded.
fn current(applied: &HashMap<i32, Option<String>>) -> bool {
    MIGRATIONS
        .iter()
        .all(|(v, _, _)| matches!(applied.get(v), Some(Some(_))))
}

impl PgConnection {
    /// How many migrations this version would apply (read-only; for `check`).
    pub(crate) async fn pending_migrations(&mut self) -> Result<usize, SinkError> {
        let result = applied_in_transaction(self.client().await?).await;
        let applied = result.map_err(|e| self.on_error(e))?.unwrap_or_default();
        verify(&applied)?;
        Ok(MIGRATIONS
            .iter()
            .filter(|(v, _, _)| !matches!(applied.get(v), Some(Some(_))))
            .count())
    }

    /// Apply pending migrations; safe to run from many consumers at once. Returns how many ran.
    pub async fn migrate(&mut self) -> Result<usize, SinkError> {
        let result = migrate_with(self.client().await?).await;
        match result {
            Ok(outcome) => outcome,
            Err(e) => Err(self.on_error(e)),
        }
    }
}

async fn migrate_with(
    client: &mut Client,
) -> Result<Result<usize, SinkError>, tokio_postgres::Error> {
    if let Some(applied) = applied_in_transaction(client).await? {
        if let Err(e) = verify(&applied) {
            return Ok(Err(e));
        }
        if current(&applied) {
            return Ok(Ok(0));
        }
    }
    let tx = begin(client).await?;
    // "already exists, skipping" notices are expected on every start; keep them out of the logs.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS login_etl_schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );
         ALTER TABLE login_etl_schema_migrations ADD COLUMN IF NOT EXISTS checksum text;",
    )
    .await?;
    let applied = applied(&tx).await?.unwrap_or_default();
    if let Err(e) = verify(&applied) {
        return Ok(Err(e));
    }
    let mut ran = 0;
    for (version, name, sql) in MIGRATIONS {
        let sum = checksum(sql);
        match applied.get(version) {
            Some(Some(_)) => continue,
            // Applied before checksums were recorded: record today's text.
            Some(None) => {
                tx.execute(
                    "UPDATE login_etl_schema_migrations SET checksum = $2 WHERE version = $1",
                    &[version, &sum],
                )
                .await?;
            }
            None => {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO login_etl_schema_migrations (version, name, checksum) \
                     VALUES ($1, $2, $3)",
                    &[version, name, &sum],
                )
                .await?;
                tracing::info!(version, name, "applied migration");
                ran += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(Ok(ran))
}
