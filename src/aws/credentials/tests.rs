use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use proptest::prelude::*;

use super::*;

/// What the chain answers to its next call.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// Credentials expiring this many seconds after the test clock's start.
    ExpiringAt(u64),
    /// Credentials without an expiry.
    Unexpiring,
    /// A failed fetch (a `credential_process` that exits 1).
    Fail,
    /// No credentials anywhere.
    NotConfigured,
}

const BASE: u64 = 1_700_000_000;

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(BASE + seconds)
}

/// A chain that answers what it is told, names each credential `AK<call>`, and counts calls.
#[derive(Debug, Default)]
struct Chain {
    next: Mutex<Option<Answer>>,
    calls: AtomicUsize,
}

impl ProvideCredentials for Chain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let answer = self.next.lock().unwrap().expect("an answer was set");
        let key = format!("AK{call}");
        future::ProvideCredentials::ready(match answer {
            Answer::ExpiringAt(s) => Ok(Credentials::new(key, "s", None, Some(at(s)), "t")),
            Answer::Unexpiring => Ok(Credentials::new(key, "s", None, None, "t")),
            Answer::Fail => Err(CredentialsError::provider_error("exited with code 1")),
            Answer::NotConfigured => Err(CredentialsError::not_loaded("none")),
        })
    }
}

struct Harness {
    chain: Arc<Chain>,
    seconds: Arc<AtomicU64>,
    cache: CachedCredentials,
}

impl Harness {
    fn new() -> Self {
        let chain = Arc::new(Chain::default());
        let seconds = Arc::new(AtomicU64::new(0));
        let now = seconds.clone();
        let clock: Clock = Arc::new(move || at(now.load(Ordering::SeqCst)));
        let cache = CachedCredentials::with_clock(
            SharedCredentialsProvider::new(SharedChain(chain.clone())),
            clock,
        );
        Self {
            chain,
            seconds,
            cache,
        }
    }

    /// At `seconds`, with the chain ready to answer `answer`: what the cache gives.
    async fn get(&self, seconds: u64, answer: Answer) -> Result<String, CredentialsError> {
        self.seconds.store(seconds, Ordering::SeqCst);
        *self.chain.next.lock().unwrap() = Some(answer);
        let credentials = self.cache.get().await?;
        Ok(credentials.access_key_id().to_string())
    }

    fn calls(&self) -> usize {
        self.chain.calls.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct SharedChain(Arc<Chain>);

impl ProvideCredentials for SharedChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.0.provide_credentials()
    }
}

#[tokio::test]
async fn expiring_credentials_are_reused_until_five_minutes_before_they_expire() {
    let h = Harness::new();
    assert_eq!(h.get(0, Answer::ExpiringAt(3600)).await.unwrap(), "AK1");
    assert_eq!(h.get(3600 - 301, Answer::Fail).await.unwrap(), "AK1");
    assert_eq!(h.calls(), 1);
    assert_eq!(
        h.get(3600 - 299, Answer::ExpiringAt(7200)).await.unwrap(),
        "AK2"
    );
    assert_eq!(h.calls(), 2);
}

#[tokio::test]
async fn unexpiring_credentials_are_resolved_every_15_minutes_and_kept_if_that_fails() {
    let h = Harness::new();
    assert_eq!(h.get(0, Answer::Unexpiring).await.unwrap(), "AK1");
    assert_eq!(h.get(899, Answer::Fail).await.unwrap(), "AK1");
    assert_eq!(h.calls(), 1);
    // Due: the chain fails, the old ones stay, and the next try waits for the backoff.
    assert_eq!(h.get(900, Answer::Fail).await.unwrap(), "AK1");
    assert_eq!(h.calls(), 2);
    assert_eq!(h.get(900, Answer::Unexpiring).await.unwrap(), "AK1");
    assert_eq!(h.calls(), 2, "no new try before the backoff has passed");
    assert_eq!(h.get(960, Answer::Unexpiring).await.unwrap(), "AK3");
    assert_eq!(h.get(960 + 899, Answer::Fail).await.unwrap(), "AK3");
    assert_eq!(h.calls(), 3);
}

#[tokio::test]
async fn a_failed_renewal_keeps_the_last_good_ones_until_they_expire() {
    let h = Harness::new();
    assert_eq!(h.get(0, Answer::ExpiringAt(600)).await.unwrap(), "AK1");
    assert_eq!(h.get(400, Answer::Fail).await.unwrap(), "AK1");
    // Valid until 30 s (the margin) before the expiry.
    assert_eq!(h.get(569, Answer::Fail).await.unwrap(), "AK1");
    let expired = h.get(571, Answer::Fail).await.unwrap_err();
    assert!(!not_configured(&expired), "{expired}");
    assert_eq!(h.get(601, Answer::ExpiringAt(4000)).await.unwrap(), "AK5");
}

#[tokio::test]
async fn only_credentials_never_found_are_not_configured() {
    let h = Harness::new();
    assert!(not_configured(
        &h.get(0, Answer::NotConfigured).await.unwrap_err()
    ));
    assert_eq!(h.get(1, Answer::ExpiringAt(600)).await.unwrap(), "AK2");
    let lost = h.get(700, Answer::NotConfigured).await.unwrap_err();
    assert!(!not_configured(&lost), "found once, so configured: {lost}");
}

proptest! {
    /// Over generated sequences of clock steps and chain answers: the cache never hands out
    /// expired credentials, fails only when the chain failed and nothing valid is cached, asks
    /// the chain only when the cached ones are due, and gives the newest it has.
    #[test]
    fn the_cache_serves_valid_credentials_and_asks_only_when_due(
        steps in proptest::collection::vec((0u64..1200, 0u8..4, 60u64..3600), 1..40)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let h = Harness::new();
        let mut now = 0;
        // (key, expiry, fetched at) of the newest credentials the chain gave.
        let mut newest: Option<(String, Option<u64>, u64)> = None;
        for (advance, kind, lifetime) in steps {
            now += advance;
            let answer = match kind {
                0 => Answer::Fail,
                1 => Answer::ExpiringAt(now + lifetime),
                2 => Answer::Unexpiring,
                _ => Answer::NotConfigured,
            };
            let before = h.calls();
            let got = runtime.block_on(h.get(now, answer));
            let called = h.calls() > before;
            let fresh = newest.as_ref().is_some_and(|(_, expiry, fetched)| match expiry {
                Some(e) => now + RENEW_BEFORE_EXPIRY.as_secs() < *e,
                None => now < fetched + REFRESH_UNEXPIRING.as_secs(),
            });
            let margin = EXPIRY_MARGIN.as_secs();
            let valid = newest.as_ref().is_some_and(|(_, e, _)| e.map_or(true, |e| now + margin < e));
            prop_assert!(!(called && fresh), "asked the chain although fresh credentials were cached");
            prop_assert!(called || valid, "served without asking, but nothing valid was cached");
            if called && matches!(answer, Answer::ExpiringAt(_) | Answer::Unexpiring) {
                let expiry = match answer { Answer::ExpiringAt(e) => Some(e), _ => None };
                newest = Some((format!("AK{}", h.calls()), expiry, now));
            }
            match got {
                Ok(key) => {
                    let (newest_key, expiry, _) = newest.as_ref().expect("something was fetched");
                    prop_assert_eq!(&key, newest_key);
                    prop_assert!(expiry.map_or(true, |e| now + margin < e), "expired credentials served");
                }
                Err(_) => {
                    prop_assert!(called && !valid, "failed although valid credentials were cached");
                }
            }
        }
    }
}
