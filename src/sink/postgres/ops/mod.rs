//! The operator's type, [`PgOperator`], apart from the writer (`PgSink`, the parent folder) over
//! the same shared connection: views for `status` and `quarantine`, reports, audited reveals,
//! erasure, key usage, re-keying, retention, monthly partitions and ledger pruning. Each file
//! adds methods to [`PgOperator`] for one concern.

mod audit;
mod backfills;
mod erase;
mod inspect;
mod key_check;
mod key_usage;
mod partition;
mod privacy_report;
mod prune;
mod rekey;
mod reports;
mod retention;
mod reveal;
mod shred;

pub use audit::Accountable;
pub use backfills::{BackfillProgress, ObjectToRegister, ObjectsProgress};
pub use erase::{Erased, PseudonymsOf, Subject as EraseSubject};
pub use inspect::{DbStatus, QuarantineEntry};
pub use key_usage::KeyUsage;
pub use partition::Conversion;
pub use prune::PRUNE_BATCH;
pub use rekey::{rekey_commit, RekeyRow};
pub use reports::{SharedDevice, SharedIp, SharedNetwork, TableCounts};
pub use reveal::{MaskedRow, RevealRequest};
pub use shred::{PeriodKeyRecord, PeriodKeyState, ShredPeriod, Shredded};

use super::{DbSettings, PgConnection, SinkError};

/// What operators run against the database (commands and `run`'s background upkeep); the
/// pipeline never holds one.
#[derive(Debug)]
pub struct PgOperator {
    db: PgConnection,
}

impl From<PgConnection> for PgOperator {
    fn from(db: PgConnection) -> Self {
        Self { db }
    }
}

impl PgOperator {
    /// An operator's handle on this database (no connection yet).
    pub fn new(settings: &DbSettings) -> Result<Self, SinkError> {
        PgConnection::new(settings).map(Self::from)
    }

    /// `user@host:port/db`, for log lines.
    pub fn target(&self) -> &str {
        self.db.target()
    }

    /// Apply pending migrations ([`PgConnection::migrate`]); only `login-etl migrate` does.
    pub async fn migrate(&mut self) -> Result<usize, SinkError> {
        self.db.migrate().await
    }

    /// Stop unless every migration of this version is applied. Operator commands never change
    /// the schema (they run under a role that may not): they say to run `login-etl migrate`.
    pub async fn require_current_schema(&mut self) -> Result<(), SinkError> {
        let pending = self.db.pending_migrations().await?;
        if pending > 0 {
            return Err(SinkError::Schema(format!(
                "the schema in {} is {pending} migration(s) behind this version: run `login-etl migrate` first (as the schema's owner); nothing was changed",
                self.db.target()
            )));
        }
        Ok(())
    }
}
