//! One credential cache in front of the AWS provider chain, shared by the SDK clients, the hot
//! SQS path and the RDS IAM token signer: the chain is asked again only when its credentials are
//! about to expire (or, without an expiry, every 15 minutes like the SDK), and a renewal that
//! fails keeps the last good credentials while they are still valid, pacing further tries with
//! the retry policy's backoff. One failed fetch (an IMDS timeout, STS throttling, a
//! `credential_process` that exits 1 once) is therefore never a stop: only "no credentials
//! configured at all" before any were found is ([`CredentialsError::CredentialsNotLoaded`]).
//!
//! The SDK's `IdentityCache::lazy()` does not fit: it drops credentials 10 s before they expire
//! and turns a failed reload into an error although they are still valid, and it can only be
//! driven by the SDK's orchestrator (`RuntimeComponents`), not by the hot path or the signer.
//! The SDK clients still wrap this cache in theirs; the two agree.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

use crate::retry::Backoff;

/// Credentials are renewed this long before they expire.
pub(crate) const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// Credentials are not used this close to their expiry (a request signed at the last moment
/// could arrive after it and be refused as expired).
pub(crate) const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

/// Credentials without an expiry are resolved again this often (the SDK's default expiration).
pub(crate) const REFRESH_UNEXPIRING: Duration = Duration::from_secs(15 * 60);

/// The longest one fetch may take (IMDS, STS, a `credential_process` that hangs); then it counts
/// as failed and is tried again.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What time it is: the system clock, or a test's.
pub(crate) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The system clock.
pub(crate) fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// The cache. Cheap to clone (clones share it).
#[derive(Clone)]
pub(crate) struct CachedCredentials {
    provider: SharedCredentialsProvider,
    clock: Clock,
    state: Arc<Mutex<State>>,
    /// One fetch at a time; the others use the current credentials meanwhile, or wait.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

/// Never prints credentials.
impl std::fmt::Debug for CachedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedCredentials")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    last: Option<Fetched>,
    /// After a failed renewal (the last credentials still valid): no new try before this.
    pause_until: Option<SystemTime>,
    backoff: Backoff,
}

struct Fetched {
    credentials: Credentials,
    at: SystemTime,
}

impl Fetched {
    /// Whether they may be used at `now` without asking the chain first.
    fn fresh_at(&self, now: SystemTime) -> bool {
        match self.credentials.expiry() {
            Some(expiry) => now + RENEW_BEFORE_EXPIRY < expiry,
            None => now < self.at + REFRESH_UNEXPIRING,
        }
    }

    /// Whether AWS still accepts them at `now`.
    fn valid_at(&self, now: SystemTime) -> bool {
        match self.credentials.expiry() {
            // A request signed just before the expiry may reach AWS just after it.
            Some(expiry) => now + EXPIRY_MARGIN < expiry,
            None => true,
        }
    }
}

impl CachedCredentials {
    pub(crate) fn new(provider: SharedCredentialsProvider) -> Self {
        Self::with_clock(provider, system_clock())
    }

    pub(crate) fn with_clock(provider: SharedCredentialsProvider, clock: Clock) -> Self {
        Self {
            provider,
            clock,
            state: Arc::default(),
            fetching: Arc::default(),
        }
    }

    /// Credentials to sign with now: the cached ones, renewed when due.
    pub(crate) async fn get(&self) -> Result<Credentials, CredentialsError> {
        let now = (self.clock)();
        if let Some(credentials) = self.usable(now) {
            return Ok(credentials);
        }
        let _fetching = match self.fetching.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                if let Some(credentials) = self.valid(now) {
                    return Ok(credentials);
                }
                let guard = self.fetching.lock().await;
                if let Some(credentials) = self.usable((self.clock)()) {
                    return Ok(credentials);
                }
                guard
            }
        };
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, self.provider.provide_credentials())
            .await
            .unwrap_or_else(|_| Err(CredentialsError::provider_timed_out(FETCH_TIMEOUT)));
        let now = (self.clock)();
        let mut state = self.lock();
        match fetched {
            Ok(credentials) => {
                state.last = Some(Fetched {
                    credentials: credentials.clone(),
                    at: now,
                });
                state.pause_until = None;
                state.backoff.reset();
                Ok(credentials)
            }
            Err(e) => {
                let had_some = state.last.is_some();
                let wait = state.backoff.next_delay();
                if let Some(last) = state.last.as_ref().filter(|l| l.valid_at(now)) {
                    let credentials = last.credentials.clone();
                    state.pause_until = Some(now + wait);
                    tracing::warn!(
                        error = %super::chain_text(&e),
                        retry_in = ?wait,
                        "could not renew AWS credentials; using the current ones while they are valid"
                    );
                    return Ok(credentials);
                }
                Err(match e {
                    // Found before, so configured: the chain lost them for a moment (an IMDS
                    // that did not answer); worth trying again.
                    CredentialsError::CredentialsNotLoaded(_) if had_some => {
                        CredentialsError::provider_error(
                            "the AWS credentials found before are not found now",
                        )
                    }
                    other => other,
                })
            }
        }
    }

    /// The cached credentials if they are fresh, or valid while a renewal is paused.
    fn usable(&self, now: SystemTime) -> Option<Credentials> {
        let state = self.lock();
        let last = state.last.as_ref()?;
        let paused = state.pause_until.is_some_and(|until| now < until);
        (last.fresh_at(now) || (paused && last.valid_at(now))).then(|| last.credentials.clone())
    }

    /// The cached credentials if AWS still accepts them.
    fn valid(&self, now: SystemTime) -> Option<Credentials> {
        let state = self.lock();
        let last = state.last.as_ref().filter(|l| l.valid_at(now))?;
        Some(last.credentials.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ProvideCredentials for CachedCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.get())
    }
}

/// Whether `error` means no credentials are configured anywhere (a stop), rather than a fetch
/// that failed this time (a retry).
pub(crate) fn not_configured(error: &CredentialsError) -> bool {
    matches!(error, CredentialsError::CredentialsNotLoaded(_))
}

#[cfg(test)]
mod tests;
