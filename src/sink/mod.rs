//! Where outcomes go. Only this module knows PostgreSQL.

pub mod postgres;

pub use postgres::{
    maintenance_loop, rekey_commit, Accountable, Conversion, DatabaseUrl, DbStatus, Erased,
    KeyUsage, MaskedRow, PgSink, QuarantineEntry, RekeyRow, RevealAudit, RevealRequest,
    SharedDevice, SharedIp, SharedNetwork, SinkError, TableCounts, Upkeep, WriteReport,
    PRUNE_BATCH,
};
