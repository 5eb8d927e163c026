//! The durable simulated world a run's incarnations share: the queue, the dead-letter queue, the
//! database, the fault plan and its random draws, the trace (hashed, to prove replay exact), the
//! coverage counts and the violations found. Everything ordered (`BTreeMap`, `Vec`), so a seed's
//! run is the same run every time.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use tokio::time::Instant;

use super::faults::Faults;
use crate::message::MessageId;

/// One message in the simulated queue.
#[derive(Debug, Clone)]
pub(super) struct QueuedMessage {
    /// The id the pipeline sees: SQS's, or the original one a redriven dead letter carries.
    pub(super) id: MessageId,
    pub(super) body: String,
    pub(super) sent_at: chrono::DateTime<chrono::Utc>,
    pub(super) receive_count: u32,
    /// When it is visible again (the queue's own clock: `World::queue_now`).
    pub(super) visible_at: Instant,
}

/// One delivery's receipt.
#[derive(Debug, Clone)]
pub(super) struct Receipt {
    /// The message's sequence number in the queue.
    pub(super) seq: u64,
    /// The incarnation it was handed to.
    pub(super) incarnation: u32,
    /// A fault made letting it expire legitimate (a failed extend or delete, a lost reply).
    pub(super) excused: bool,
}

/// A quarantine entry, as `quarantined_messages` keeps it.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) code: String,
    pub(super) reason: String,
    pub(super) body: String,
    pub(super) user_id: Option<String>,
    pub(super) attempts: u32,
    pub(super) resolved: bool,
}

/// A committed row: its identity (entry key) and every text column.
#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) identity: (String, i32),
    /// The message id it landed under (`<id>#<i>` for a redriven dead letter of one login).
    pub(super) landed_as: String,
    pub(super) user_id: String,
    pub(super) texts: Vec<String>,
}

/// What the database keeps.
#[derive(Debug, Default)]
pub(super) struct Db {
    pub(super) rows: Vec<Row>,
    pub(super) ledger: BTreeMap<String, &'static str>,
    pub(super) entries: BTreeMap<(String, i32), Entry>,
    pub(super) attempts: BTreeMap<String, u32>,
    /// Period keys as `period_keys` keeps them (`None`: shredded).
    pub(super) period_keys: BTreeMap<String, Option<crate::mask::WrappedPeriodKey>>,
}

#[derive(Default)]
pub(super) struct World {
    pub(super) rng: Option<StdRng>,
    pub(super) faults: Faults,
    pub(super) faults_on: bool,
    /// How far the queue's clock runs ahead of the consumer's (clock jumps).
    pub(super) skew: Duration,
    pub(super) queue: BTreeMap<u64, QueuedMessage>,
    pub(super) next_seq: u64,
    pub(super) receipts: BTreeMap<String, Receipt>,
    pub(super) next_receipt: u64,
    /// Dead letters: (message id they carry, body).
    pub(super) dead_letters: Vec<(String, String)>,
    pub(super) forwards: BTreeMap<String, u32>,
    pub(super) db: Db,
    pub(super) visibility: Duration,
    pub(super) incarnation: u32,
    pub(super) alive: bool,
    /// Most deliveries one incarnation may hold at once (the pipeline's memory bound).
    pub(super) held_bound: usize,
    /// Operations in progress, by kind (the crash point when the process dies).
    pub(super) in_progress: BTreeMap<&'static str, u32>,
    pub(super) t0: Option<Instant>,
    pub(super) trace: std::hash::DefaultHasher,
    pub(super) coverage: BTreeMap<String, u64>,
    pub(super) violations: Vec<String>,
    /// Every id sent to the queue (originals and redriven dead letters): the ledger must equal it.
    pub(super) processed: BTreeSet<String>,
    /// Operations counted so far, and those right after which the process dies.
    pub(super) ops: u64,
    pub(super) crash_ops: BTreeSet<u64>,
    /// Woken when an operation is a crash point (the runner drops the process).
    pub(super) crash_now: Arc<tokio::sync::Notify>,
    /// Set by a crash point: the process is dead, its operations never return.
    pub(super) dying: bool,
    /// Print every event (`SIM_DUMP=1`, for replaying one seed).
    pub(super) dump: bool,
}

/// The world, shared by the simulated queue and store of every incarnation.
#[derive(Clone, Default)]
pub(super) struct Shared(pub(super) Arc<Mutex<World>>);

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Never returns once the process died at a crash point (it is about to be dropped).
    pub(super) async fn halt(&self) {
        if self.lock().dying {
            std::future::pending::<()>().await;
        }
    }

    /// Mark an operation of `kind` in progress until the guard drops (or the process dies).
    pub(super) fn busy(&self, kind: &'static str) -> Busy {
        *self.lock().in_progress.entry(kind).or_default() += 1;
        Busy(self.clone(), kind)
    }
}

pub(super) struct Busy(Shared, &'static str);

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(n) = self.0.lock().in_progress.get_mut(self.1) {
            *n = n.saturating_sub(1);
        }
    }
}

impl World {
    pub(super) fn rng(&mut self) -> &mut StdRng {
        self.rng.as_mut().expect("seeded")
    }

    /// Whether a fault of `kind` with probability `p` strikes now (counted when it does).
    pub(super) fn strike(&mut self, kind: &'static str) -> bool {
        let p = match self.faults_on {
            true => self.faults.p(kind),
            false => 0.0,
        };
        let hit = p > 0.0 && self.rng().gen_bool(p.min(1.0));
        if hit {
            self.count(format!("fault.{kind}"));
            self.event(&format!("fault {kind}"));
        }
        hit
    }

    /// Count one operation done (its effect applied, its reply not yet given); `true` if the
    /// process dies right here: the caller then never returns.
    pub(super) fn crash_here(&mut self, point: &str) -> bool {
        self.ops += 1;
        if !self.faults_on || !self.crash_ops.remove(&self.ops) {
            return false;
        }
        self.count(format!("crash.after.{point}"));
        self.event(&format!("crash after {point}"));
        self.crash_now.notify_one();
        self.dying = true;
        true
    }

    pub(super) fn count(&mut self, key: String) {
        *self.coverage.entry(key).or_default() += 1;
    }

    /// Add an event to the trace, with the simulated time.
    pub(super) fn event(&mut self, what: &str) {
        let at = self.t0.map_or(0, |t0| t0.elapsed().as_millis());
        if self.dump {
            eprintln!("{at:>9} ms  {what}");
        }
        self.trace.write(what.as_bytes());
        self.trace.write_u128(at);
    }

    pub(super) fn violation(&mut self, what: String) {
        if self.violations.len() < 20 {
            self.violations.push(what);
        }
    }

    /// The queue's clock (the consumer's plus any jump).
    pub(super) fn queue_now(&self) -> Instant {
        Instant::now() + self.skew
    }

    /// Messages not yet deleted.
    pub(super) fn undeleted(&self) -> usize {
        self.queue.len()
    }

    /// Deliveries the live incarnation holds now.
    pub(super) fn held_by_live(&self) -> usize {
        let live: BTreeSet<u64> = (self.receipts.values())
            .filter(|r| self.alive && r.incarnation == self.incarnation && !r.excused)
            .map(|r| r.seq)
            .filter(|seq| self.queue.contains_key(seq))
            .collect();
        live.len()
    }
}
