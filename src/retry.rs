//! Exponential backoff with jitter, shared by every stage that talks to a remote service.
//!
//! Each wait is random between half the current cap and the cap ("equal jitter"): it spreads the
//! retries of many consumers that failed at the same moment (a database restart) instead of having
//! them return in lockstep, while still guaranteeing the wait grows.

use std::time::Duration;

use rand::Rng;

/// Delay generator: the cap doubles after each failure, up to `max`; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// `base` is the first cap, `max` the largest.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The current cap, before jitter (for log lines).
    pub fn cap(&self) -> Duration {
        self.base
            .saturating_mul(1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max)
    }

    /// How long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self.cap();
        self.attempt = self.attempt.saturating_add(1);
        let millis = cap.as_millis().max(1) as u64;
        Duration::from_millis(rand::thread_rng().gen_range(millis / 2..=millis))
    }

    /// Failures so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Start over after a success.
    pub fn reset(&mut self) {
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
}
