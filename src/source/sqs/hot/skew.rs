//! The server's clock, as the SDK learns it (`aws-runtime`'s `ServiceClockSkewInterceptor`): each
//! reply's `Date` against the midpoint of its round trip gives the offset, and requests are signed
//! at "now + offset". A SigV4 refusal while the offset is large (over 4 minutes: AWS accepts 5) is
//! then the clock's fault, not the credentials': it is worth another attempt, signed with the
//! corrected time, and if it still fails it is reported as the clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

use crate::aws::SdkFailure;

/// Below this offset a refused signature is not blamed on the clock (the SDK's threshold).
const THRESHOLD: Duration = Duration::from_secs(4 * 60);

/// A round trip longer than this says nothing reliable about the server's clock.
const LONGEST_TRUSTED_ROUND_TRIP: Duration = Duration::from_secs(15 * 60);

/// Error codes of a SigV4 refusal a skewed clock can cause (the SDK's list).
const CODES: [&str; 6] = [
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "AuthFailure",
    "RequestTimeTooSkewed",
    "RequestExpired",
    "AccessDeniedException",
];

/// The server's clock minus ours, in milliseconds. Cheap to clone (clones share it).
#[derive(Debug, Clone, Default)]
pub(super) struct Skew(Arc<AtomicI64>);

impl Skew {
    /// The time to sign with: ours, corrected by the last offset learnt.
    pub(super) fn now(&self) -> SystemTime {
        shift(SystemTime::now(), self.0.load(Ordering::Relaxed))
    }

    /// Learn the offset from a reply's `Date` header (HTTP date), for a request sent at `sent`
    /// whose reply came at `received`.
    pub(super) fn learn(&self, date: Option<&str>, sent: SystemTime, received: SystemTime) {
        let Some(server) = date
            .and_then(|d| DateTime::from_str(d, Format::HttpDate).ok())
            .and_then(|d| SystemTime::try_from(d).ok())
        else {
            return;
        };
        let Ok(round_trip) = received.duration_since(sent) else {
            return;
        };
        if round_trip > LONGEST_TRUSTED_ROUND_TRIP {
            return;
        }
        let midpoint = sent + round_trip / 2;
        self.0
            .store(offset_millis(server, midpoint), Ordering::Relaxed);
    }

    /// Whether `failure` is a signature refusal that the clock's offset explains.
    pub(super) fn explains(&self, failure: &SdkFailure) -> bool {
        let large = self.0.load(Ordering::Relaxed).unsigned_abs() > THRESHOLD.as_millis() as u64;
        large
            && matches!(failure, SdkFailure::Service { code, .. } if CODES.iter().any(|c| code.contains(c)))
    }

    /// `failure` (one [`Self::explains`]) said as the clock's fault.
    pub(super) fn failure(&self, failure: SdkFailure) -> SdkFailure {
        match failure {
            SdkFailure::Service { code, .. } => SdkFailure::ClockSkewed {
                code,
                skew_secs: self.0.load(Ordering::Relaxed) / 1000,
            },
            other => other,
        }
    }
}

/// `server - local` in milliseconds, signed.
fn offset_millis(server: SystemTime, local: SystemTime) -> i64 {
    match server.duration_since(local) {
        Ok(ahead) => ahead.as_millis().min(i64::MAX as u128) as i64,
        Err(behind) => -(behind.duration().as_millis().min(i64::MAX as u128) as i64),
    }
}

/// `time` moved by `millis` (either way).
fn shift(time: SystemTime, millis: i64) -> SystemTime {
    let by = Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        time.checked_add(by)
    } else {
        time.checked_sub(by)
    }
    .unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn refused(code: &str) -> SdkFailure {
        SdkFailure::Service {
            code: code.into(),
            message: String::new(),
            status: 403,
        }
    }

    proptest! {
        /// For any offset of the server's clock and any round trip: the time signed with is the
        /// server's within the `Date` header's one-second resolution and half the round trip, and
        /// a refused signature is blamed on the clock exactly when the offset is over 4 minutes.
        #[test]
        fn the_signing_time_follows_the_servers_clock(
            offset in -86_400_000i64..86_400_000,
            round_trip_ms in 0u64..5_000,
        ) {
            let skew = Skew::default();
            let sent = SystemTime::now();
            let received = sent + Duration::from_millis(round_trip_ms);
            let server = shift(sent + Duration::from_millis(round_trip_ms / 2), offset);
            let date = DateTime::from(server).fmt(Format::HttpDate).unwrap();
            skew.learn(Some(&date), sent, received);
            let signing = skew.now();
            let server_now = shift(SystemTime::now(), offset);
            let error = offset_millis(signing, server_now).unsigned_abs();
            prop_assert!(error <= 1_000 + round_trip_ms, "off by {error} ms");
            let learnt = skew.0.load(Ordering::Relaxed).unsigned_abs();
            let blamed = skew.explains(&refused("SignatureDoesNotMatch"));
            prop_assert_eq!(blamed, learnt > THRESHOLD.as_millis() as u64);
            prop_assert!(!skew.explains(&refused("AWS.SimpleQueueService.NonExistentQueue")));
            if blamed {
                let said = skew.failure(refused("SignatureDoesNotMatch"));
                prop_assert!(matches!(said, SdkFailure::ClockSkewed { .. }), "{said:?}");
            }
        }
    }

    #[test]
    fn replies_without_a_usable_date_teach_nothing() {
        let skew = Skew::default();
        let sent = SystemTime::now();
        skew.learn(None, sent, sent);
        skew.learn(Some("not a date"), sent, sent);
        skew.learn(
            Some("Mon, 01 Jan 2001 00:00:00 GMT"),
            sent,
            sent + LONGEST_TRUSTED_ROUND_TRIP + Duration::from_secs(1),
        );
        assert_eq!(skew.0.load(Ordering::Relaxed), 0);
    }
}
