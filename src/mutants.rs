//! Deliberate bugs, compiled only with the `sim-mutants` feature, that the deterministic
//! simulation (`src/sim/`) must find: each is one of the classes reviews have found before. One is
//! active at a time, chosen at run time for the current thread (the simulation runs each seed on
//! a current-thread runtime, so every task of a run sees the same choice). Never in a release.

use std::cell::Cell;

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mutant {
    /// The acknowledger deletes a batch before the committer writes it (`pipeline/mod.rs`).
    DeleteBeforeCommit,
    /// Every delivery counts as new, as if the ledger claim were skipped (`redrive::candidates`).
    SkipLedgerClaim,
    /// A quarantined login is forwarded to the dead-letter queue on every redelivery
    /// (`committer::forward_quarantined` ignores what was quarantined before).
    ForwardEveryRedelivery,
    /// A refused pair quarantines the last login of the message instead of the pair's later one
    /// (`pipeline/committer/refused/`).
    RefusedPairLast,
    /// Only the first gzip member is decoded; the others are lost (`envelope.rs`).
    LoseGzipMember,
    /// The heartbeat drops the last message of each receive (`pipeline/held.rs`).
    DropHeartbeat,
    /// A login of a shredded period is sealed under the ring instead of stored without its
    /// value (`policy/apply.rs`): a shred that does not hold for late logins.
    SealShreddedUnderRing,
}

/// Every mutant with its name (for `scripts/sim.sh --mutants`).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const ALL: [(Mutant, &str); 7] = [
    (Mutant::DeleteBeforeCommit, "delete-before-commit"),
    (Mutant::SkipLedgerClaim, "skip-ledger-claim"),
    (Mutant::ForwardEveryRedelivery, "forward-every-redelivery"),
    (Mutant::RefusedPairLast, "refused-pair-last"),
    (Mutant::LoseGzipMember, "lose-gzip-member"),
    (Mutant::DropHeartbeat, "drop-heartbeat"),
    (Mutant::SealShreddedUnderRing, "seal-shredded-under-ring"),
];

thread_local! {
    static ACTIVE: Cell<Option<Mutant>> = const { Cell::new(None) };
}

/// Whether `mutant` is the bug active on this thread.
pub(crate) fn active(mutant: Mutant) -> bool {
    ACTIVE.with(|a| a.get() == Some(mutant))
}

/// Make `mutant` (or none) the bug active on this thread.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn set(mutant: Option<Mutant>) {
    ACTIVE.with(|a| a.set(mutant));
}
