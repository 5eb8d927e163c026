//! A policy in words: for each field, the column it lands in, what is stored there, whether equal
//! values can be linked and whether anyone can read the value back, and the name ENISA's
//! pseudonymisation guidance gives the technique (docs/security.md maps them).

use serde::Serialize;

use super::{Grain, Policy, Scope, Store};

/// One field of a policy, described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldLine {
    /// The login's field.
    pub field: &'static str,
    /// The column of `user_logins` that holds what is stored (NULL when dropped).
    pub column: &'static str,
    /// What is stored, in words.
    pub stored: String,
    /// Over what equal values give equal stored values (`never` when nothing links).
    pub links: String,
    /// Who can read the value back.
    pub readable_by: &'static str,
    /// The technique, as ENISA names it.
    pub technique: &'static str,
}

impl Policy {
    /// Each field in words, in [`super::FIELDS`] order.
    pub fn describe(&self) -> Vec<FieldLine> {
        self.fields()
            .map(|(field, store)| describe(field, store))
            .collect()
    }
}

pub(super) fn column(field: &'static str, store: Store) -> &'static str {
    match (field, store) {
        ("ip", Store::Network { .. } | Store::IpcryptPfx) => "masked_ip_network",
        ("ip", _) => "masked_ip",
        ("device_id", _) => "masked_device_id",
        (field, _) => field,
    }
}

fn period(scope: Scope) -> String {
    match scope {
        Scope::All => "all time".into(),
        scope => format!("one {} (by the login's sent_at)", scope.as_str()),
    }
}

fn describe(field: &'static str, store: Store) -> FieldLine {
    let column = column(field, store);
    let (stored, links, readable_by, technique): (String, String, &str, &str) = match store {
        Store::Keep => (
            "the value as it arrives".into(),
            "all time".into(),
            "anyone who can read the table",
            "none (kept in clear)",
        ),
        Store::Drop => (
            "nothing (the column is NULL)".into(),
            "never".into(),
            "nobody",
            "suppression (data minimisation)",
        ),
        Store::Hmac { scope } => (
            format!(
                "a keyed HMAC-SHA256 pseudonym{}",
                match scope {
                    Scope::All => String::new(),
                    s => format!(" under a key derived for each {}", s.as_str()),
                }
            ),
            period(scope),
            "nobody (one-way; equal values can be matched by key holders)",
            "message authentication code (keyed hash), deterministic pseudonymisation",
        ),
        Store::AesSiv { scope } => (
            match scope {
                Scope::All => "AES-256-SIV encryption under the key ring".into(),
                s => format!(
                    "AES-256-SIV encryption under a key per {} (`shred` destroys a period's key)",
                    s.as_str()
                ),
            },
            period(scope),
            "key holders, audited (`reveal`)",
            "deterministic encryption (symmetric), deterministic pseudonymisation",
        ),
        Store::IpcryptPfx => (
            "prefix-preserving encryption of the address (ipcrypt-pfx)".into(),
            "all time, and every shared prefix shows".into(),
            "key holders, audited (`reveal`)",
            "format-preserving (prefix-preserving) encryption",
        ),
        Store::Network { v4, v6, scope } => (
            format!("a keyed pseudonym of the address's /{v4} (IPv4) or /{v6} (IPv6) network; the address itself is not stored"),
            period(scope),
            "nobody (one-way)",
            "generalisation, then message authentication code",
        ),
        Store::Sha256 => (
            "an unkeyed SHA-256 hash (compatibility only)".into(),
            "all time".into(),
            "anyone, by brute force (IPv4, guessable ids)",
            "cryptographic hash function without a key (ENISA advises against it)",
        ),
        Store::Generalise { parts } => (
            match parts {
                1 => "the major version only (2.3.0 → 2)".into(),
                _ => "the major.minor version (2.3.0 → 2.3)".into(),
            },
            "all time (coarser)".into(),
            "anyone who can read the table (coarser)",
            "generalisation",
        ),
        Store::Truncate(grain) => (
            match grain {
                Grain::Hour => "the time cut to its hour (UTC)".into(),
                Grain::Day => "the time cut to its day (UTC)".into(),
                Grain::Month => "the first day of its month".into(),
            },
            "all time (coarser)".into(),
            "anyone who can read the table (coarser)",
            "generalisation (of time)",
        ),
    };
    FieldLine {
        field,
        column,
        stored,
        links,
        readable_by,
        technique,
    }
}
