//! Where outcomes go. Only this module knows PostgreSQL.

pub mod postgres;
pub mod tls;

pub use postgres::{
    MaskedRow, PgSink, RevealAudit, RevealSelector, SharedDevice, SharedIp, SinkError, TableCounts,
    WriteReport,
};
