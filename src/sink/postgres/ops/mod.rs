//! Operator queries on the same connection type as the writer, kept apart from the data path
//! (`migrate`, `write`, `attempts` in the parent folder): views for `status` and `quarantine`,
//! reports, audited reveals, erasure, key usage, re-keying, retention, monthly partitions and
//! ledger pruning. Each file adds methods to [`PgSink`](super::PgSink) for one concern.

mod audit;
mod erase;
mod inspect;
mod key_fingerprints;
mod key_usage;
mod partition;
mod prune;
mod rekey;
mod reports;
mod retention;
mod reveal;

pub use audit::Accountable;
pub use erase::{Erased, Subject as EraseSubject};
pub use inspect::{DbStatus, QuarantineEntry};
pub use key_usage::KeyUsage;
pub use partition::Conversion;
pub use prune::PRUNE_BATCH;
pub use rekey::{rekey_commit, RekeyRow};
pub use reports::{SharedDevice, SharedIp, SharedNetwork, TableCounts};
pub use reveal::{MaskedRow, RevealRequest};
