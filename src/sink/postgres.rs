//! Schema migrations and the transactional batch write.
//!
//! One batch is one transaction: the message ids go into the `processed_messages` ledger first
//! (`ON CONFLICT DO NOTHING RETURNING` tells which are new), then the new rows are streamed with
//! binary `COPY` and the new quarantine entries inserted. Either all of it commits or none of it
//! does, and the caller deletes from SQS only after the commit.

use std::collections::HashSet;

use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls;

use crate::transform::{Outcome, OutcomeKind};

/// Migrations embedded in the binary, applied in order, each once.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "user_logins",
        include_str!("../../migrations/0001_user_logins.sql"),
    ),
    (
        2,
        "ledger_and_quarantine",
        include_str!("../../migrations/0002_ledger_and_quarantine.sql"),
    ),
    (
        3,
        "duplicates_and_reveal_audit",
        include_str!("../../migrations/0003_duplicates_and_reveal_audit.sql"),
    ),
];

/// Arbitrary constant for `pg_advisory_xact_lock`, so consumers starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6c6f_6769_6e65_746c; // "loginetl"

const COPY_ROWS: &str = "COPY user_logins (user_id, device_type, masked_ip, masked_device_id, \
                         locale, app_version, create_date) FROM STDIN (FORMAT binary)";
const COPY_TYPES: [Type; 7] = [
    Type::VARCHAR,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::DATE,
];
const CLAIM_IDS: &str = "INSERT INTO processed_messages (message_id, outcome) \
                         SELECT * FROM unnest($1::text[], $2::text[]) \
                         ON CONFLICT (message_id) DO NOTHING RETURNING message_id";
const INSERT_QUARANTINE: &str = "INSERT INTO quarantined_messages (message_id, reason_code, reason, \
                                 received_at, sent_at, receive_count, body_bytes, body_masked) \
                                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], \
                                 $4::timestamptz[], $5::timestamptz[], $6::int4[], $7::int4[], $8::text[]) \
                                 ON CONFLICT (message_id) DO NOTHING";

/// PostgreSQL failures, split by what the caller should do about them.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The database URL does not parse.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// Authentication failed, the database is missing, or permission is denied: retrying won't help.
    #[error("PostgreSQL refused {target}: {message}")]
    Fatal {
        /// user@host:port/db, without password.
        target: String,
        /// Server message.
        message: String,
    },
    /// PostgreSQL refused the data itself (a constraint, a value it can't store): retrying the same
    /// batch won't help, but the rest of the batch may commit without the offending message.
    #[error("PostgreSQL rejected the data: {reason}")]
    Rejected {
        /// SQLSTATE, condition and constraint/column names; never values.
        reason: String,
    },
    /// Connection lost, server down, serialization failure and the like: worth retrying.
    #[error("PostgreSQL error on {target}: {message}")]
    Transient {
        /// user@host:port/db, without password.
        target: String,
        /// Error text, including the server's message when there is one.
        message: String,
    },
}

impl SinkError {
    /// Whether the run must stop: retrying can't succeed and the data is not to blame.
    pub fn is_fatal(&self) -> bool {
        matches!(self, SinkError::InvalidUrl(_) | SinkError::Fatal { .. })
    }
}

/// What a committed batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Rows copied into `user_logins`.
    pub rows: u64,
    /// Entries added to `quarantined_messages`.
    pub quarantined: u64,
    /// Messages already in the ledger (redeliveries), skipped.
    pub duplicates: u64,
}

/// Table sizes, for `status` and for checking that the books balance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// Rows in `user_logins`.
    pub rows: i64,
    /// Entries in `quarantined_messages`, by reason code, sorted.
    pub quarantined_by_code: Vec<(String, i64)>,
    /// Ids in the `processed_messages` ledger.
    pub processed: i64,
}

impl TableCounts {
    /// All quarantined entries.
    pub fn quarantined(&self) -> i64 {
        self.quarantined_by_code.iter().map(|(_, n)| n).sum()
    }
}

/// A masked device id seen for more than one user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SharedDevice {
    /// The mask.
    pub masked_device_id: String,
    /// Distinct users.
    pub users: i64,
    /// Rows.
    pub logins: i64,
}

/// A masked address seen for more than one user or device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SharedIp {
    /// The mask.
    pub masked_ip: String,
    /// Distinct users.
    pub users: i64,
    /// Distinct devices.
    pub devices: i64,
    /// Rows.
    pub logins: i64,
}

/// Which rows `reveal` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevealSelector {
    /// Every row of one user.
    UserId(String),
    /// Every row with this IP mask.
    MaskedIp(String),
    /// Every row with this device mask.
    MaskedDeviceId(String),
}

impl std::fmt::Display for RevealSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RevealSelector::UserId(v) => write!(f, "user_id = {v:?}"),
            RevealSelector::MaskedIp(v) => write!(f, "masked_ip = {v:?}"),
            RevealSelector::MaskedDeviceId(v) => write!(f, "masked_device_id = {v:?}"),
        }
    }
}

/// Who reveals, and why: recorded in `mask_reveals` before anything is shown.
#[derive(Debug, Clone)]
pub struct RevealAudit {
    /// The operating-system user running the command.
    pub os_user: String,
    /// The person accountable (`--actor`, default: the OS user).
    pub actor: String,
    /// Why (`--reason`, required).
    pub reason: String,
}

/// A masked row as `reveal` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedRow {
    /// User.
    pub user_id: String,
    /// Day of the login.
    pub create_date: Option<chrono::NaiveDate>,
    /// IP mask.
    pub masked_ip: Option<String>,
    /// Device mask.
    pub masked_device_id: Option<String>,
}

/// A connection to the target database; reconnects lazily after a failure.
pub struct PgSink {
    config: Config,
    tls: MakeRustlsConnect,
    target: String,
    client: Option<Client>,
}

impl std::fmt::Debug for PgSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSink")
            .field("target", &self.target)
            .finish()
    }
}

/// `user@host:port/dbname` for messages: never the password.
fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or("?"),
        host,
        port,
        config.get_dbname().unwrap_or("?")
    )
}

impl PgSink {
    /// Parse the URL (no connection yet).
    pub fn new(database_url: &str) -> Result<Self, SinkError> {
        let (rest, tls_options) = tls::split_url(database_url).map_err(SinkError::InvalidUrl)?;
        let mut config: Config = rest
            .parse()
            // The parse error never echoes the URL, which may hold a password.
            .map_err(|e: tokio_postgres::Error| SinkError::InvalidUrl(e.to_string()))?;
        config.ssl_mode(tls_options.mode);
        let tls = tls::connector(&tls_options).map_err(SinkError::InvalidUrl)?;
        Ok(Self {
            target: describe(&config),
            config,
            tls,
            client: None,
        })
    }

    /// `user@host:port/db`, for log lines.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn classify(&self, err: tokio_postgres::Error) -> SinkError {
        if let Some(db) = err.as_db_error() {
            // Class 22 (data exception) and 23 (integrity constraint violation) are about the rows.
            // Their messages and details can quote values, so only names are kept.
            let code = db.code().code();
            if code.starts_with("22") || code.starts_with("23") {
                let mut reason = format!("SQLSTATE {code}");
                if let Some(constraint) = db.constraint() {
                    reason.push_str(&format!(", constraint `{constraint}`"));
                }
                if let Some(column) = db.column() {
                    reason.push_str(&format!(", column `{column}`"));
                }
                if let Some(table) = db.table() {
                    reason.push_str(&format!(", table `{table}`"));
                }
                return SinkError::Rejected { reason };
            }
        }
        let message = match err.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            // "error performing TLS handshake" alone doesn't say why: add the causes.
            None => std::iter::successors(std::error::Error::source(&err), |e| e.source())
                .fold(err.to_string(), |text, cause| format!("{text}: {cause}")),
        };
        let certificate_refused =
            std::iter::successors(std::error::Error::source(&err), |e| e.source()).any(|e| {
                e.downcast_ref::<rustls::Error>()
                    .or_else(|| {
                        e.downcast_ref::<std::io::Error>()
                            .and_then(|io| io.get_ref())
                            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    })
                    .is_some_and(|tls| matches!(tls, rustls::Error::InvalidCertificate(_)))
            });
        let fatal = certificate_refused
            || err.code().is_some_and(|code| {
                [
                    SqlState::INVALID_PASSWORD,
                    SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                    SqlState::INVALID_CATALOG_NAME,
                    SqlState::INSUFFICIENT_PRIVILEGE,
                ]
                .contains(code)
            });
        let target = self.target.clone();
        if fatal {
            SinkError::Fatal { target, message }
        } else {
            SinkError::Transient { target, message }
        }
    }

    /// The live client, connecting first if needed.
    async fn client(&mut self) -> Result<&mut Client, SinkError> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if self.client.is_none() {
            let (client, connection) = self
                .config
                .connect(self.tls.clone())
                .await
                .map_err(|e| self.classify(e))?;
            let target = self.target.clone();
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(%target, error = %e, "PostgreSQL connection closed");
                }
            });
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Check the database is reachable and we may log in.
    pub async fn ping(&mut self) -> Result<(), SinkError> {
        let result = self.client().await?.simple_query("SELECT 1").await;
        result.map(|_| ()).map_err(|e| self.on_error(e))
    }

    /// Forget a connection that failed so the next call reconnects.
    fn on_error(&mut self, err: tokio_postgres::Error) -> SinkError {
        if err.is_closed() || err.as_db_error().is_none() {
            self.client = None;
        }
        self.classify(err)
    }

    /// Apply pending migrations; safe to run from many consumers at once. Returns how many ran.
    pub async fn migrate(&mut self) -> Result<usize, SinkError> {
        let result = migrate_with(self.client().await?).await;
        result.map_err(|e| self.on_error(e))
    }

    /// Count what has landed (exact counts: meant for checks and small tables, not dashboards).
    pub async fn counts(&mut self) -> Result<TableCounts, SinkError> {
        let result = counts_with(self.client().await?).await;
        result.map_err(|e| self.on_error(e))
    }

    /// Masked device ids used by more than one user, most users first.
    pub async fn shared_devices(&mut self, limit: i64) -> Result<Vec<SharedDevice>, SinkError> {
        let result = self
            .client()
            .await?
            .query(
                "SELECT masked_device_id, count(DISTINCT user_id), count(*) FROM user_logins \
                 WHERE masked_device_id IS NOT NULL GROUP BY masked_device_id \
                 HAVING count(DISTINCT user_id) > 1 ORDER BY 2 DESC, 3 DESC, 1 LIMIT $1",
                &[&limit],
            )
            .await;
        let rows = result.map_err(|e| self.on_error(e))?;
        Ok(rows
            .iter()
            .map(|r| SharedDevice {
                masked_device_id: r.get(0),
                users: r.get(1),
                logins: r.get(2),
            })
            .collect())
    }

    /// Masked addresses shared by several users or devices, most users first.
    pub async fn shared_ips(&mut self, limit: i64) -> Result<Vec<SharedIp>, SinkError> {
        let result = self
            .client()
            .await?
            .query(
                "SELECT masked_ip, count(DISTINCT user_id), count(DISTINCT masked_device_id), \
                 count(*) FROM user_logins WHERE masked_ip IS NOT NULL GROUP BY masked_ip \
                 HAVING count(DISTINCT user_id) > 1 OR count(DISTINCT masked_device_id) > 1 \
                 ORDER BY 2 DESC, 3 DESC, 4 DESC, 1 LIMIT $1",
                &[&limit],
            )
            .await;
        let rows = result.map_err(|e| self.on_error(e))?;
        Ok(rows
            .iter()
            .map(|r| SharedIp {
                masked_ip: r.get(0),
                users: r.get(1),
                devices: r.get(2),
                logins: r.get(3),
            })
            .collect())
    }

    /// Read the rows to reveal and record the audit entry in the same transaction: if the audit
    /// row can't be written, nothing is returned. `masks` of `extra_masks` are audited too (for
    /// revealing single values).
    pub async fn rows_for_reveal(
        &mut self,
        selector: Option<&RevealSelector>,
        extra_masks: &[String],
        limit: i64,
        audit: &RevealAudit,
    ) -> Result<Vec<MaskedRow>, SinkError> {
        let result = reveal_with(self.client().await?, selector, extra_masks, limit, audit).await;
        result.map_err(|e| self.on_error(e))
    }

    /// Write one batch in one transaction; see the module docs.
    pub async fn write_batch(&mut self, outcomes: &[Outcome]) -> Result<WriteReport, SinkError> {
        if outcomes.is_empty() {
            return Ok(WriteReport::default());
        }
        let result = write_with(self.client().await?, outcomes).await;
        result.map_err(|e| self.on_error(e))
    }
}

/// Versions already applied, or `None` before the first migration.
async fn applied_versions(client: &Client) -> Result<Option<HashSet<i32>>, tokio_postgres::Error> {
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
        .query("SELECT version FROM login_etl_schema_migrations", &[])
        .await?;
    Ok(Some(rows.iter().map(|row| row.get(0)).collect()))
}

async fn migrate_with(client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    // Up to date: touch nothing, so `run` works under a role that may not create tables.
    if let Some(applied) = applied_versions(client).await? {
        if MIGRATIONS.iter().all(|(v, _, _)| applied.contains(v)) {
            return Ok(0);
        }
    }
    let tx = client.transaction().await?;
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
         )",
    )
    .await?;
    let applied: HashSet<i32> = tx
        .query("SELECT version FROM login_etl_schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut ran = 0;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO login_etl_schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tracing::info!(version, name, "applied migration");
        ran += 1;
    }
    tx.commit().await?;
    Ok(ran)
}

async fn counts_with(client: &mut Client) -> Result<TableCounts, tokio_postgres::Error> {
    let totals = client
        .query_one(
            "SELECT (SELECT count(*) FROM user_logins), (SELECT count(*) FROM processed_messages)",
            &[],
        )
        .await?;
    let (rows, processed) = (totals.get(0), totals.get(1));
    let quarantined_by_code = client
        .query(
            "SELECT reason_code, count(*) FROM quarantined_messages GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    Ok(TableCounts {
        rows,
        quarantined_by_code,
        processed,
    })
}

async fn reveal_with(
    client: &mut Client,
    selector: Option<&RevealSelector>,
    extra_masks: &[String],
    limit: i64,
    audit: &RevealAudit,
) -> Result<Vec<MaskedRow>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    const COLUMNS: &str =
        "SELECT user_id, create_date, masked_ip, masked_device_id FROM user_logins";
    let rows = match selector {
        None => Vec::new(),
        Some(RevealSelector::UserId(v)) => {
            tx.query(
                &format!("{COLUMNS} WHERE user_id = $1 ORDER BY create_date LIMIT $2"),
                &[v, &limit],
            )
            .await?
        }
        Some(RevealSelector::MaskedIp(v)) => {
            tx.query(
                &format!("{COLUMNS} WHERE masked_ip = $1 ORDER BY create_date LIMIT $2"),
                &[v, &limit],
            )
            .await?
        }
        Some(RevealSelector::MaskedDeviceId(v)) => {
            tx.query(
                &format!("{COLUMNS} WHERE masked_device_id = $1 ORDER BY create_date LIMIT $2"),
                &[v, &limit],
            )
            .await?
        }
    };
    let rows: Vec<MaskedRow> = rows
        .iter()
        .map(|r| MaskedRow {
            user_id: r.get(0),
            create_date: r.get(1),
            masked_ip: r.get(2),
            masked_device_id: r.get(3),
        })
        .collect();
    let mut masks: Vec<&str> = extra_masks.iter().map(String::as_str).collect();
    for row in &rows {
        masks.extend(row.masked_ip.as_deref());
        masks.extend(row.masked_device_id.as_deref());
    }
    masks.sort_unstable();
    masks.dedup();
    let described = selector.map_or_else(|| "given masks".to_string(), |s| s.to_string());
    tx.execute(
        "INSERT INTO mask_reveals (os_user, actor, reason, selector, masks, row_count) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &audit.os_user,
            &audit.actor,
            &audit.reason,
            &described,
            &masks,
            &(rows.len() as i32),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(rows)
}

async fn write_with(
    client: &mut Client,
    outcomes: &[Outcome],
) -> Result<WriteReport, tokio_postgres::Error> {
    let tx = client.transaction().await?;

    let ids: Vec<&str> = outcomes.iter().map(|o| o.message_id.as_str()).collect();
    let kinds: Vec<&str> = outcomes
        .iter()
        .map(|o| match o.kind {
            OutcomeKind::Row { .. } => "row",
            OutcomeKind::Quarantine(_) => "quarantined",
        })
        .collect();
    let mut new_ids: HashSet<String> = tx
        .query(CLAIM_IDS, &[&ids, &kinds])
        .await?
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    // `remove` makes a message id that appears twice in one batch count once.
    let fresh: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| new_ids.remove(&o.message_id))
        .collect();
    let mut report = WriteReport {
        duplicates: (outcomes.len() - fresh.len()) as u64,
        ..WriteReport::default()
    };

    let sink = tx.copy_in(COPY_ROWS).await?;
    let writer = BinaryCopyInWriter::new(sink, &COPY_TYPES);
    pin_mut!(writer);
    for outcome in &fresh {
        if let OutcomeKind::Row { login, create_date } = &outcome.kind {
            let row: [&(dyn ToSql + Sync); 7] = [
                &login.user_id,
                &login.device_type,
                &login.masked_ip,
                &login.masked_device_id,
                &login.locale,
                &login.app_version,
                create_date,
            ];
            writer.as_mut().write(&row).await?;
            report.rows += 1;
        }
    }
    writer.finish().await?;

    let quarantined: Vec<_> = fresh
        .iter()
        .filter_map(|o| match &o.kind {
            OutcomeKind::Quarantine(q) => Some((o.message_id.as_str(), q)),
            OutcomeKind::Row { .. } => None,
        })
        .collect();
    if !quarantined.is_empty() {
        let ids: Vec<&str> = quarantined.iter().map(|(id, _)| *id).collect();
        let codes: Vec<&str> = quarantined
            .iter()
            .map(|(_, q)| q.rejection.code.as_str())
            .collect();
        let reasons: Vec<&str> = quarantined
            .iter()
            .map(|(_, q)| q.rejection.message.as_str())
            .collect();
        let received: Vec<_> = quarantined.iter().map(|(_, q)| q.received_at).collect();
        let sent: Vec<_> = quarantined.iter().map(|(_, q)| q.sent_at).collect();
        let counts: Vec<i32> = quarantined
            .iter()
            .map(|(_, q)| i32::try_from(q.receive_count).unwrap_or(i32::MAX))
            .collect();
        let sizes: Vec<i32> = quarantined
            .iter()
            .map(|(_, q)| i32::try_from(q.body_bytes).unwrap_or(i32::MAX))
            .collect();
        let bodies: Vec<Option<&str>> = quarantined
            .iter()
            .map(|(_, q)| q.body_masked.as_deref())
            .collect();
        report.quarantined = tx
            .execute(
                INSERT_QUARANTINE,
                &[
                    &ids, &codes, &reasons, &received, &sent, &counts, &sizes, &bodies,
                ],
            )
            .await?;
    }

    tx.commit().await?;
    Ok(report)
}
