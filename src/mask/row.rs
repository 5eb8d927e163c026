//! A stored row, and the seam through which a privacy policy (`crate::policy`, above this
//! module) makes it: the masker defers to a [`RowPolicy`] without knowing policies.

use chrono::{DateTime, NaiveDate, Utc};

use super::{KeyError, MaskedLogin, WrappedPeriodKey};
use crate::validate::LoginEvent;

/// One login as `user_logins` stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    /// Its columns but the dates.
    pub login: MaskedLogin,
    /// The day it was sent (truncated as the policy says).
    pub create_date: NaiveDate,
}

/// Whether a row's revealable values are sealed under its period's random key
/// ([`super::period_masker`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeriodKeyUse {
    /// No value of the row is sealed under a period key.
    #[default]
    None,
    /// Sealed under its period's key: the row commits only while that key is not shredded.
    Sealed,
    /// Its period's key was shredded: those values are NULL, as if dropped.
    Shredded,
    /// Its period's key is not known to this consumer yet: the row is made again once it is.
    Missing,
}

/// Period keys as the database holds them: wrapped, or `None` once shredded.
pub type PeriodKeys = Vec<(String, Option<WrappedPeriodKey>)>;

/// Makes the stored row of a validated login; `policy::Applier` under `run --policy`.
pub trait RowPolicy: std::fmt::Debug + Send + Sync {
    /// The row `event`, sent at `sent_at`, becomes. Its raw `ip` and `device_id` end here.
    fn row(&self, event: LoginEvent, sent_at: DateTime<Utc>) -> StoredRow;

    /// Fresh random keys for these periods, wrapped, to be stored unless another consumer
    /// stored one first (a policy without scoped `aes-siv` needs none).
    fn new_period_keys(&self, _periods: &[String]) -> Vec<(String, WrappedPeriodKey)> {
        Vec::new()
    }

    /// Seal rows of these periods under these keys (as stored) from now on.
    fn use_period_keys(&self, _keys: &PeriodKeys) -> Result<(), KeyError> {
        Ok(())
    }
}
