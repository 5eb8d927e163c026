//! PostgreSQL, as two types over one shared connection ([`PgConnection`]: settings, TLS, IAM,
//! lazy reconnects, query helpers). [`PgSink`] is the writer the pipeline commits through
//! (`pipeline::Store`): the transactional batch (`write.rs`), solo attempts (`attempts.rs`),
//! redeliveries of quarantined messages (`redrive/`), and what `run` checks at start (the
//! columns, the key fingerprints). [`PgOperator`] (`ops/`) is everything an operator runs —
//! status, reports, reveal, erase, rekey, retention, partitions, pruning — so the type the
//! pipeline holds cannot erase, reveal or re-key. Both can bring the schema up to date
//! (`migrate.rs`).

mod attempts;
mod columns;
mod connection;
mod erased;
mod error;
mod iam;
mod key_fingerprints;
mod migrate;
mod ops;
mod period_keys;
mod policy_record;
mod privileges;
pub(crate) mod redrive;
mod s3_progress;
mod tls;
mod unknown_fields;
mod write;

use connection::begin;
pub use connection::{DatabaseUrl, DbSettings, PgConnection};
pub use error::SinkError;
pub use iam::auth_token as rds_auth_token;
pub use ops::{
    rekey_commit, Accountable, BackfillProgress, Conversion, DbStatus, EraseSubject, Erased,
    KeyUsage, MaskedRow, ObjectToRegister, ObjectsProgress, PeriodKeyRecord, PeriodKeyState,
    PgOperator, PseudonymsOf, QuarantineEntry, RekeyRow, RevealRequest, SharedDevice, SharedIp,
    SharedNetwork, ShredPeriod, Shredded, TableCounts, PRUNE_BATCH,
};
pub use policy_record::{PolicyInForce, NO_POLICY_FILE};
pub use write::WriteReport;

/// The writer: what the pipeline commits through, and nothing an operator runs.
pub struct PgSink {
    db: PgConnection,
    /// Unknown field names already sent to `unknown_fields` through this sink (bounded).
    recorded_fields: unknown_fields::RecordedFields,
    /// The active key's id and fingerprint, recorded before the first write.
    pending_key: Option<(String, String)>,
    /// Erasure records are checked in every write ([`erased`]); `None`: no keys to check with.
    erasures: Option<crate::mask::ErasureFingerprints>,
}

impl std::fmt::Debug for PgSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSink")
            .field("target", &self.db.target())
            .finish()
    }
}

impl From<PgConnection> for PgSink {
    fn from(db: PgConnection) -> Self {
        Self {
            db,
            recorded_fields: Default::default(),
            pending_key: None,
            erasures: None,
        }
    }
}

impl PgSink {
    /// A writer for this database (no connection yet).
    pub fn new(settings: &DbSettings) -> Result<Self, SinkError> {
        PgConnection::new(settings).map(Self::from)
    }

    /// The shared connection: its schema, its role's privileges, its transport.
    pub fn connection(&mut self) -> &mut PgConnection {
        &mut self.db
    }

    /// `user@host:port/db`, for log lines.
    pub fn target(&self) -> &str {
        self.db.target()
    }

    /// Apply pending migrations ([`PgConnection::migrate`]).
    pub async fn migrate(&mut self) -> Result<usize, SinkError> {
        self.db.migrate().await
    }
}
