//! The faults of one scenario, drawn from its seed: a probability per kind (each kind on in about
//! half the seeds), windows when the database is read-only (a failover), how long stalls last,
//! when the queue's clock jumps and when the process crashes. Shrinking turns kinds off.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;

/// Every fault kind, by the name coverage and shrinking use.
pub(super) const KINDS: [&str; 16] = [
    "receive_error",
    "throttled",
    "receive_reply_lost",
    "duplicate_delivery",
    "delete_error",
    "delete_partial",
    "extend_error",
    "extend_partial",
    "forward_error",
    "write_fails_before_commit",
    "write_fails_after_commit",
    "write_stalls",
    "connection_lost",
    "read_only",
    "clock_jump",
    "crash",
];

#[derive(Debug, Clone, Default)]
pub(super) struct Faults {
    p: BTreeMap<&'static str, f64>,
    /// Read-only windows, from the start of the run.
    pub(super) read_only: Vec<(Duration, Duration)>,
    /// Longest stall of a write.
    pub(super) stall: Duration,
    /// When the queue's clock jumps ahead, and by how much.
    pub(super) clock_jump: Option<(Duration, Duration)>,
    /// When the process crashes, from the start of the run.
    pub(super) crashes: Vec<Duration>,
    /// After which operations (queue and store calls, counted from 1) the process crashes.
    pub(super) crash_ops: Vec<u64>,
    /// How long faults last; after that the queue must drain.
    pub(super) window: Duration,
}

impl Faults {
    pub(super) fn draw(rng: &mut StdRng) -> Self {
        let window = Duration::from_secs(rng.gen_range(120..=1200));
        let mut p = BTreeMap::new();
        for kind in KINDS {
            if rng.gen_bool(0.5) {
                p.insert(kind, rng.gen_range(0.02..0.3));
            }
        }
        let at =
            |rng: &mut StdRng| Duration::from_millis(rng.gen_range(0..window.as_millis() as u64));
        let read_only = match p.contains_key("read_only") {
            true => (0..rng.gen_range(1..=2))
                .map(|_| (at(rng), Duration::from_secs(rng.gen_range(5..=400))))
                .collect(),
            false => vec![],
        };
        let clock_jump = (p.contains_key("clock_jump"))
            .then(|| (at(rng), Duration::from_secs(rng.gen_range(1..=90))));
        // Half early, at millisecond precision, while the first messages are in flight.
        let mut crashes: Vec<Duration> = match p.contains_key("crash") {
            true => (0..rng.gen_range(1..=4))
                .map(|_| match rng.gen_bool(0.5) {
                    true => Duration::from_millis(rng.gen_range(0..8_000)),
                    false => at(rng),
                })
                .collect(),
            false => vec![],
        };
        let crash_ops = match p.contains_key("crash") {
            true => (0..rng.gen_range(1..=3))
                .map(|_| rng.gen_range(1..=300))
                .collect(),
            false => vec![],
        };
        crashes.sort();
        Self {
            p,
            read_only,
            stall: Duration::from_secs(rng.gen_range(1..=150)),
            clock_jump,
            crashes,
            crash_ops,
            window,
        }
    }

    /// The probability of `kind` per operation (0 when off).
    pub(super) fn p(&self, kind: &str) -> f64 {
        self.p.get(kind).copied().unwrap_or(0.0)
    }

    /// Turn `kind` on with probability `p` (a kind of a scenario's own, drawn after the rest).
    pub(super) fn with(&mut self, kind: &'static str, p: f64) {
        self.p.insert(kind, p);
    }

    /// The kinds on.
    pub(super) fn kinds(&self) -> Vec<&'static str> {
        self.p.keys().copied().collect()
    }

    /// Turn a kind off (shrinking).
    pub(super) fn without(&mut self, kind: &str) {
        self.p.remove(kind);
        match kind {
            "read_only" => self.read_only.clear(),
            "clock_jump" => self.clock_jump = None,
            "crash" => {
                self.crashes.clear();
                self.crash_ops.clear();
            }
            _ => {}
        }
    }

    /// Whether the database is read-only `since` the start.
    pub(super) fn read_only_at(&self, since: Duration) -> bool {
        (self.read_only.iter()).any(|&(from, long)| since >= from && since < from + long)
    }
}
