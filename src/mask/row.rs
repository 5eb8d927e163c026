//! A stored row, and the seam through which a privacy policy (`crate::policy`, above this
//! module) makes it: the masker defers to a [`RowPolicy`] without knowing policies.

use chrono::{DateTime, NaiveDate, Utc};

use super::MaskedLogin;
use crate::validate::LoginEvent;

/// One login as `user_logins` stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    /// Its columns but the dates.
    pub login: MaskedLogin,
    /// The day it was sent (truncated as the policy says).
    pub create_date: NaiveDate,
}

/// Makes the stored row of a validated login; `policy::Applier` under `run --policy`.
pub trait RowPolicy: std::fmt::Debug + Send + Sync {
    /// The row `event`, sent at `sent_at`, becomes. Its raw `ip` and `device_id` end here.
    fn row(&self, event: LoginEvent, sent_at: DateTime<Utc>) -> StoredRow;
}
