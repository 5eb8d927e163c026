//! Where outcomes go. Only this module knows PostgreSQL.

pub mod postgres;
pub mod tls;

pub use postgres::{PgSink, SinkError, TableCounts, WriteReport};
