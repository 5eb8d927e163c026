//! The one retry policy: every error says what to do about it ([`Disposition`]), and every retry
//! loop asks [`Retry::after`] whether to go again. Budget, classification, the warning line and
//! the (shutdown-aware) wait of an operation are decided here.
//!
//! How it composes with the AWS SDK's own retry: inside each SQS or KMS call the SDK's standard
//! retry (or, for receive/delete/change visibility, the hot path's copy of it in
//! `source/sqs/hot`) makes up to 3 attempts with its own short backoff (throttling, 5xx, transport errors);
//! only a call that still fails reaches this policy, which retries the operation under its budget.
//! So one policy attempt may be up to 3 HTTP requests, and the policy's time budget bounds the
//! whole. PostgreSQL has no such inner layer. Fetching AWS credentials (`aws::credentials`) is no
//! such inner retry: a renewal that fails while the cached credentials are still valid keeps them
//! and is tried again after this policy's [`Backoff`]; with none valid the call fails as a
//! transient error, and the caller's loop here retries it.
//!
//! Waits use exponential backoff with "equal jitter": each wait is random between half the current
//! cap and the cap. That spreads the retries of many consumers that failed at the same moment (a
//! database restart) instead of having them return in lockstep, while still guaranteeing growth.

use std::fmt::Display;
use std::time::Duration;

use tokio::time::Instant;

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// Called with the retry's kind on every retry: the service layer counts them as a metric
/// (`telemetry::metrics::retry`), so this policy depends on no reporting code.
static RETRY_OBSERVER: std::sync::OnceLock<fn(&'static str)> = std::sync::OnceLock::new();

/// Have `observe` called with the kind of every retry (once per process; later calls are
/// ignored).
pub(crate) fn observe_retries(observe: fn(&'static str)) {
    let _ = RETRY_OBSERVER.set(observe);
}

/// What the caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Transient (network, throttling, a server restarting): the same call may succeed later.
    Retry,
    /// The data is to blame (a row PostgreSQL refuses): retrying the same batch can't succeed,
    /// but the rest of it can commit once the offending message is set apart.
    Isolate,
    /// Configuration or permissions: nothing succeeds until a person fixes something. Stop now.
    Stop,
}

/// Errors that know their [`Disposition`].
pub(crate) trait Classify {
    fn disposition(&self) -> Disposition;
    /// The longest wait before the next attempt, when this error should be retried sooner than
    /// the usual backoff allows (a failover: the new writer is usually there within seconds).
    fn max_wait(&self) -> Option<Duration> {
        None
    }
}

/// How long a retry loop may go on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Budget {
    /// Until this much time has passed since the first failure.
    Time(Duration),
    /// At most this many retries.
    Attempts(u32),
    /// Until shutdown (a receiver waiting for SQS to come back).
    Forever,
}

/// One retry loop's state. Use it as:
///
/// ```ignore
/// let mut retry = Retry::new("receive", "receive failed", Budget::Forever, &shutdown);
/// let value = loop {
///     match call().await {
///         Ok(value) => break value,
///         Err(e) => retry.after(e).await?,
///     }
/// };
/// ```
/// Every `kind` a retry is labelled with, so the metric exports each at 0 from the start.
pub(crate) const KINDS: &[&str] = &["receive", "write", "delete", "forward", "startup"];

pub(crate) struct Retry<'a> {
    kind: &'static str,
    what: &'static str,
    budget: Budget,
    backoff: Backoff,
    started: Instant,
    shutdown: &'a CancellationToken,
}

impl<'a> Retry<'a> {
    /// `kind` labels the retry metric (receive, write, delete, …); `what` starts the warning
    /// line (`"{what}, retrying"`), e.g. "SQS not reachable yet".
    pub(crate) fn new(
        kind: &'static str,
        what: &'static str,
        budget: Budget,
        shutdown: &'a CancellationToken,
    ) -> Self {
        debug_assert!(
            KINDS.contains(&kind) || cfg!(test),
            "retry kind {kind:?} is not in retry::KINDS"
        );
        Self {
            kind,
            what,
            budget,
            backoff: Backoff::default(),
            started: Instant::now(),
            shutdown,
        }
    }

    /// After a failure: wait and return `Ok(())` to go again, or give the error back when it is
    /// not worth retrying, the budget is spent, or shutdown was requested meanwhile.
    pub(crate) async fn after<E: Classify + Display>(&mut self, error: E) -> Result<(), E> {
        if error.disposition() != Disposition::Retry || self.shutdown.is_cancelled() {
            return Err(error);
        }
        let delay = match error.max_wait() {
            Some(cap) => self.backoff.next_delay().min(cap),
            None => self.backoff.next_delay(),
        };
        let spent = match self.budget {
            Budget::Time(budget) => self.started.elapsed() + delay > budget,
            Budget::Attempts(most) => self.backoff.attempts() > most,
            Budget::Forever => false,
        };
        if spent {
            tracing::error!(error = %error, attempts = self.backoff.attempts(), "{}, giving up", self.what);
            return Err(error);
        }
        tracing::warn!(error = %error, retry_in = ?delay, attempt = self.backoff.attempts(), "{}, retrying", self.what);
        if let Some(observe) = RETRY_OBSERVER.get() {
            observe(self.kind);
        }
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => Err(error),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }

    /// A success: the next failure starts the backoff over (the budget keeps running).
    pub(crate) fn succeeded(&mut self) {
        self.backoff.reset();
        self.started = Instant::now();
    }
}

/// A random wait between `low` and `high` milliseconds. Under test, from this thread's seeded
/// generator when the simulation set one (`seed_jitter`), so a seed replays exactly.
fn jitter(low: u64, high: u64) -> u64 {
    #[cfg(test)]
    if let Some(millis) = SEEDED.with(|s| s.borrow_mut().as_mut().map(|r| r.gen_range(low..=high)))
    {
        return millis;
    }
    rand::thread_rng().gen_range(low..=high)
}

#[cfg(test)]
thread_local! {
    static SEEDED: std::cell::RefCell<Option<rand::rngs::StdRng>> = const { std::cell::RefCell::new(None) };
}

/// Draw this thread's retry jitter from a generator seeded with `seed` (`None`: at random again).
#[cfg(test)]
pub(crate) fn seed_jitter(seed: Option<u64>) {
    use rand::SeedableRng;
    SEEDED.with(|s| *s.borrow_mut() = seed.map(rand::rngs::StdRng::seed_from_u64));
}

/// Delay generator: the cap doubles after each failure, up to `max`. Also paces the renewal of
/// AWS credentials that are still valid (`aws::credentials`).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The current cap, before jitter.
    fn cap(&self) -> Duration {
        self.base
            .saturating_mul(1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max)
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let cap = self.cap();
        self.attempt = self.attempt.saturating_add(1);
        let millis = cap.as_millis().max(1) as u64;
        Duration::from_millis(jitter(millis / 2, millis))
    }

    fn attempts(&self) -> u32 {
        self.attempt
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    /// 200 ms doubling to 30 s: quick recovery from a blip, gentle on a service that is down.
    fn default() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(Disposition);
    impl Classify for E {
        fn disposition(&self) -> Disposition {
            self.0
        }
    }
    impl Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(100));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        assert!(
            delays[7] >= Duration::from_millis(500),
            "jitter keeps at least half the cap"
        );
        assert_eq!(b.attempts(), 8);
        b.reset();
        assert_eq!(b.cap(), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn only_retryable_errors_are_retried() {
        let shutdown = CancellationToken::new();
        let mut retry = Retry::new("test", "test", Budget::Forever, &shutdown);
        assert!(retry.after(E(Disposition::Stop)).await.is_err());
        assert!(retry.after(E(Disposition::Isolate)).await.is_err());
        assert!(retry.after(E(Disposition::Retry)).await.is_ok());
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let shutdown = CancellationToken::new();
        let mut retry = Retry::new("test", "test", Budget::Attempts(2), &shutdown);
        assert!(retry.after(E(Disposition::Retry)).await.is_ok());
        assert!(retry.after(E(Disposition::Retry)).await.is_ok());
        assert!(retry.after(E(Disposition::Retry)).await.is_err());
    }

    #[tokio::test]
    async fn shutdown_ends_the_wait_at_once() {
        let shutdown = CancellationToken::new();
        let mut retry = Retry::new("test", "test", Budget::Forever, &shutdown);
        for _ in 0..8 {
            retry.backoff.next_delay(); // the next wait would be seconds long
        }
        let cancel = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            cancel.cancel();
        });
        let started = Instant::now();
        assert!(retry.after(E(Disposition::Retry)).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
