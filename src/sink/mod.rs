//! Where outcomes go. Only this module knows PostgreSQL.

pub mod postgres;

pub use postgres::{
    maintenance_loop, Conversion, DatabaseUrl, DbStatus, MaskedRow, PgSink, QuarantineEntry,
    RevealAudit, RevealRequest, SharedDevice, SharedIp, SinkError, TableCounts, WriteReport,
    PRUNE_BATCH,
};
