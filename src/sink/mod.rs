//! Where outcomes go. Only this module knows PostgreSQL.

pub mod postgres;

pub use postgres::{
    DatabaseUrl, MaskedRow, PgSink, RevealAudit, RevealRequest, SharedDevice, SharedIp, SinkError,
    TableCounts, WriteReport,
};
