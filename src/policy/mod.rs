//! The privacy policy: what is stored of each field of a login, in one file people can read
//! (`--policy FILE`, TOML; `examples/policies/`). Every field of the login has an entry, so the
//! file says everything: nothing is stored by omission.
//!
//! This module knows the choices and how to check a file ([`Policy::parse`], offline, every
//! problem with its line and the fix) and to say in words what each choice stores
//! ([`Policy::describe`]). Without a policy file, `run` does what [`Policy::seed`] says.

mod apply;
#[cfg(test)]
mod apply_tests;
pub mod attack;
mod describe;
pub mod in_force;
mod parse;
pub mod period;
mod problem;
mod subject;
#[cfg(test)]
mod tests;

pub use apply::{Applier, Stored};
pub use describe::FieldLine;
pub use problem::{PolicyError, Problem};
pub use subject::user_id_pseudonyms;

use sha2::{Digest, Sha256};

/// Over how long equal values give equal pseudonyms. Periods follow the login's own time
/// (`sent_at`); across periods pseudonyms of one value are unrelated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One pseudonym per value for all time (today's behaviour).
    All,
    /// A calendar month (UTC).
    Month,
    /// An ISO week (UTC).
    Week,
    /// A calendar day (UTC).
    Day,
}

/// How a field's value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// As it arrives.
    Keep,
    /// Not at all: the column is NULL.
    Drop,
    /// A keyed pseudonym (HMAC-SHA256), one-way (`user_id`'s `pseudonym`, `ip`/`device_id`'s
    /// `hmac`).
    Hmac {
        /// Over how long pseudonyms link.
        scope: Scope,
    },
    /// Deterministic encryption (AES-256-SIV), revealable by key holders (`reveal`).
    AesSiv {
        /// Over how long pseudonyms link; scoped ones are under a key per period (shreddable).
        scope: Scope,
    },
    /// Prefix-preserving encryption of an address (ipcrypt-pfx), revealable.
    IpcryptPfx,
    /// A keyed pseudonym of the address's network, not of the address.
    Network {
        /// IPv4 prefix length.
        v4: u8,
        /// IPv6 prefix length.
        v6: u8,
        /// Over how long pseudonyms link.
        scope: Scope,
    },
    /// Unkeyed SHA-256 (compatibility only: IPv4 values are found by brute force).
    Sha256,
    /// A version cut to its first `parts` dot-separated parts (`2.3.0` → `2.3` for 2).
    Generalise {
        /// 1 (major) or 2 (major.minor).
        parts: u8,
    },
    /// A time cut to the start of its hour, day or month (UTC).
    Truncate(Grain),
}

/// What a time is truncated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    /// The start of its hour.
    Hour,
    /// Its day.
    Day,
    /// The first day of its month.
    Month,
}

/// The fields of a login a policy speaks of, in the table's order.
pub const FIELDS: [&str; 8] = [
    "user_id",
    "ip",
    "device_id",
    "device_type",
    "locale",
    "app_version",
    "create_date",
    "sent_at",
];

/// A checked policy: one [`Store`] per field of [`FIELDS`], in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    stores: [Store; 8],
}

impl Policy {
    /// Today's behaviour without a policy file: `ip` and `device_id` as HMAC pseudonyms for all
    /// time, everything else as it arrives (`examples/policies/seed.toml`).
    pub fn seed() -> Policy {
        let hmac = Store::Hmac { scope: Scope::All };
        let mut stores = [Store::Keep; 8];
        stores[1] = hmac;
        stores[2] = hmac;
        Policy { stores }
    }

    /// How `field` (one of [`FIELDS`]) is stored.
    pub fn store(&self, field: &str) -> Option<Store> {
        let i = FIELDS.iter().position(|f| *f == field)?;
        Some(self.stores[i])
    }

    /// Each field with how it is stored, in [`FIELDS`] order.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, Store)> + '_ {
        FIELDS.iter().copied().zip(self.stores.iter().copied())
    }

    /// Whether a field is `aes-siv` with a scope: sealed under random period keys (`shred`).
    pub fn seals_by_period(&self) -> bool {
        (self.fields())
            .any(|(_, store)| matches!(store, Store::AesSiv { scope } if scope != Scope::All))
    }

    /// The policy's choices in a canonical form, one `field=choice` per line: what the
    /// fingerprint is of (so comments, order and spacing in the file don't change it).
    pub fn canonical(&self) -> String {
        self.fields()
            .map(|(field, store)| format!("{field}={}\n", store.canonical()))
            .collect()
    }

    /// `pol-` and 12 hex digits of SHA-256 over [`Policy::canonical`]: names the policy in force
    /// in the database and in reports.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.canonical().as_bytes());
        format!("pol-{}", &hex::encode(digest)[..12])
    }

    /// Whether any field's pseudonyms are scoped to a period (rows then carry their period).
    pub fn is_time_scoped(&self) -> bool {
        self.stores
            .iter()
            .any(|s| s.scope().is_some_and(|s| s != Scope::All))
    }
}

impl Store {
    /// The scope of a keyed pseudonym, `None` for other choices.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Store::Hmac { scope } | Store::AesSiv { scope } | Store::Network { scope, .. } => {
                Some(scope)
            }
            _ => None,
        }
    }

    pub(super) fn canonical(self) -> String {
        let scoped = |name: &str, scope: Scope| match scope {
            Scope::All => name.to_string(),
            scope => format!("{name}/{}", scope.as_str()),
        };
        match self {
            Store::Keep => "keep".into(),
            Store::Drop => "drop".into(),
            Store::Hmac { scope } => scoped("hmac", scope),
            Store::AesSiv { scope } => scoped("aes-siv", scope),
            Store::IpcryptPfx => "ipcrypt-pfx".into(),
            Store::Network { v4, v6, scope } => scoped(&format!("network-{v4}-{v6}"), scope),
            Store::Sha256 => "sha256".into(),
            Store::Generalise { parts } => format!("generalise-{parts}"),
            Store::Truncate(grain) => format!("truncate-{}", grain.as_str()),
        }
    }
}

impl Scope {
    /// As the policy file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Month => "month",
            Scope::Week => "week",
            Scope::Day => "day",
        }
    }
}

impl Grain {
    /// As the policy file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Hour => "hour",
            Grain::Day => "day",
            Grain::Month => "month",
        }
    }
}
