//! Where committed outcomes go, as a trait: PostgreSQL ([`PgSink`]), a stand-in in the committer's
//! unit tests, or the simulated store of `src/sim/`. The ledger semantics are the contract: a
//! message id written twice lands once, all its logins with it.

use std::collections::HashSet;
use std::future::Future;

use crate::mask::{PeriodKeys, WrappedPeriodKey};
use crate::message::{MessageId, Outcome};
use crate::sink::{PgSink, SinkError, WriteReport};

/// Where committed outcomes go: the database, a stand-in in unit tests, the simulated store.
pub trait Store: Send {
    /// Commit outcomes in one transaction; `solo`: also clear their recorded solo attempts.
    fn write(
        &mut self,
        outcomes: &[&Outcome],
        solo: bool,
    ) -> impl Future<Output = Result<WriteReport, SinkError>> + Send;
    /// Write outcomes and roll back: would the database take them? (Finding the refused login
    /// of a message of several, whose logins must commit together.)
    fn probe(
        &mut self,
        outcomes: &[&Outcome],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
    /// Record one more solo attempt (committed at once); how many there have been.
    fn record_solo_attempt(
        &mut self,
        id: &MessageId,
    ) -> impl Future<Output = Result<u32, SinkError>> + Send;
    /// Which of these refused logins must not go to the dead-letter queue: those quarantined
    /// before (their dead letter was sent then), and those naming a subject erased since they
    /// were sent (their raw body would carry the subject out). A store without a quarantine
    /// table knows none.
    fn not_to_forward(
        &mut self,
        _refused: &[&Outcome],
    ) -> impl Future<Output = Result<HashSet<usize>, SinkError>> + Send {
        async { Ok(HashSet::new()) }
    }
    /// Store `fresh` period keys where their period has none yet, then the keys of `periods` as
    /// stored (`None`: shredded). A store without a key table keeps what it is given.
    fn period_keys(
        &mut self,
        _periods: &[String],
        fresh: &[(String, WrappedPeriodKey)],
    ) -> impl Future<Output = Result<PeriodKeys, SinkError>> + Send {
        let kept = (fresh.iter())
            .map(|(p, k)| (p.clone(), Some(k.clone())))
            .collect();
        async move { Ok(kept) }
    }
}

impl Store for PgSink {
    async fn write(&mut self, outcomes: &[&Outcome], solo: bool) -> Result<WriteReport, SinkError> {
        self.write_outcomes(outcomes, solo).await
    }

    async fn record_solo_attempt(&mut self, id: &MessageId) -> Result<u32, SinkError> {
        PgSink::record_solo_attempt(self, id).await
    }

    async fn probe(&mut self, outcomes: &[&Outcome]) -> Result<(), SinkError> {
        self.probe_outcomes(outcomes).await
    }

    async fn not_to_forward(&mut self, refused: &[&Outcome]) -> Result<HashSet<usize>, SinkError> {
        PgSink::not_to_forward(self, refused).await
    }

    async fn period_keys(
        &mut self,
        periods: &[String],
        fresh: &[(String, WrappedPeriodKey)],
    ) -> Result<PeriodKeys, SinkError> {
        PgSink::period_keys(self, periods, fresh).await
    }
}
