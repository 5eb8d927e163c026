//! Where outcomes go. Only this module knows PostgreSQL.

pub mod postgres;

pub use postgres::{
    rds_auth_token, rekey_commit, Accountable, BackfillProgress, Conversion, DatabaseUrl,
    DbSettings, DbStatus, EraseSubject, Erased, KeyUsage, MaskedRow, ObjectToRegister,
    ObjectsProgress, PeriodKeyRecord, PeriodKeyState, PgConnection, PgOperator, PgSink,
    PseudonymsOf, QuarantineEntry, RekeyRow, RevealRequest, SharedDevice, SharedIp, SharedNetwork,
    ShredPeriod, Shredded, SinkError, TableCounts, WriteReport, PRUNE_BATCH,
};
