//! Reading a policy file: TOML, one table per field of the login and `version = 1`. Checked
//! offline and whole: every problem is reported with its line and what to write instead (the
//! nearest valid name for a typo), never only the first.

use toml_edit::{Document, Item, TableLike};

use super::problem::{nearest, PolicyError, Problem};
use super::{Grain, Policy, Scope, Store, FIELDS};

/// The ways each field may be stored, as the file spells them.
fn choices(field: &str) -> &'static [&'static str] {
    match field {
        "user_id" => &["keep", "pseudonym"],
        "ip" => &[
            "hmac",
            "aes-siv",
            "ipcrypt-pfx",
            "network",
            "sha256",
            "drop",
        ],
        "device_id" => &["hmac", "aes-siv", "sha256", "drop"],
        "device_type" | "locale" => &["keep", "drop"],
        "app_version" => &["keep", "generalise", "drop"],
        "create_date" | "sent_at" => &["keep", "truncate"],
        _ => &[],
    }
}

/// The keys of a field's table besides `store`, and the choices each belongs to.
const OPTIONS: [(&str, &[&str]); 6] = [
    ("scope", &["pseudonym", "hmac", "aes-siv", "network"]),
    ("prefix_v4", &["network"]),
    ("prefix_v6", &["network"]),
    ("unkeyed_ok", &["sha256"]),
    ("parts", &["generalise"]),
    ("to", &["truncate"]),
];

/// What `to` may say for each field that can be truncated.
fn grains(field: &str) -> &'static [&'static str] {
    match field {
        "sent_at" => &["hour", "day"],
        _ => &["month"], // create_date is a date already
    }
}

impl Policy {
    /// Check a policy file's text; the policy, or every problem with its line and fix.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let mut checker = Checker {
            text,
            problems: Vec::new(),
        };
        let policy = checker.policy();
        // In the file's order; what is missing (no line) last.
        checker
            .problems
            .sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        match (policy, checker.problems.is_empty()) {
            (Some(policy), true) => Ok(policy),
            _ => Err(PolicyError {
                problems: checker.problems,
            }),
        }
    }
}

struct Checker<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn policy(&mut self) -> Option<Policy> {
        let document = match Document::parse(self.text) {
            Ok(document) => document,
            Err(e) => {
                let at = e.span().map(|s| s.start);
                let reason = e.message().trim_end().replace('\n', " ");
                self.problem(at, format!("not valid TOML: {reason}"));
                return None;
            }
        };
        let top = document.as_table();
        let mut known: Vec<&str> = FIELDS.to_vec();
        known.push("version");
        for (key, item) in top.iter() {
            if !known.contains(&key) {
                let at = top.key(key).and_then(|k| k.span()).map(|s| s.start);
                let hint = nearest(key, &known);
                self.problem(at, format!("unknown field `{key}`{hint}; a policy has a table for each of {} and `version = 1`", FIELDS.join(", ")));
                let _ = item;
            }
        }
        match top.get("version") {
            None => self.problem(
                None,
                "`version = 1` is missing: write it as the file's first line".into(),
            ),
            Some(item) if item.as_integer() == Some(1) => {}
            Some(item) => self.problem(
                item.span().map(|s| s.start),
                "`version` must be 1, the only version of the policy format".into(),
            ),
        }
        let mut stores = [Store::Keep; 8];
        let mut whole = true;
        for (i, field) in FIELDS.iter().enumerate() {
            match self.field(field, top.get(field)) {
                Some(store) => stores[i] = store,
                None => whole = false,
            }
        }
        // A row has one period: every scoped field must say the same.
        let scopes: Vec<(&str, Scope)> = FIELDS
            .iter()
            .zip(stores)
            .filter_map(|(f, s)| s.scope().filter(|s| *s != Scope::All).map(|s| (*f, s)))
            .collect();
        if let Some(((first, a), (other, b))) = scopes
            .first()
            .zip(scopes.iter().find(|(_, s)| *s != scopes[0].1))
        {
            let at = top
                .get(other)
                .and_then(|t| t.as_table_like())
                .and_then(|t| self.value_at(t, "scope"));
            self.problem(at, format!("[{other}] scope = \"{}\" differs from [{first}] scope = \"{}\": a row has one period, so every scoped field uses the same one (or \"all\")", b.as_str(), a.as_str()));
            return None;
        }
        whole.then_some(Policy { stores })
    }

    /// One field's table.
    fn field(&mut self, field: &str, item: Option<&Item>) -> Option<Store> {
        let allowed = choices(field);
        let example = format!(
            "`[{field}]` with `store = \"{}\"`",
            allowed.join("\"` or `\"")
        );
        let Some(item) = item else {
            self.problem(
                None,
                format!(
                    "no entry for `{field}`: every field of the login is stated; add {example}"
                ),
            );
            return None;
        };
        let Some(table) = item.as_table_like() else {
            let at = item.span().map(|s| s.start);
            self.problem(at, format!("`{field}` must be a table: write {example}"));
            return None;
        };
        let keys: Vec<&str> = std::iter::once("store")
            .chain(OPTIONS.iter().map(|(k, _)| *k))
            .collect();
        // A typo is matched only against the keys this field can use.
        let own: Vec<&str> = std::iter::once("store")
            .chain(
                OPTIONS
                    .iter()
                    .filter(|(_, b)| b.iter().any(|c| allowed.contains(c)))
                    .map(|(k, _)| *k),
            )
            .collect();
        for (key, _) in table.iter() {
            if !keys.contains(&key) {
                let hint = nearest(key, &own);
                self.problem(
                    self.key_at(table, key),
                    format!(
                        "[{field}] has no key `{key}`{hint}; its keys are store{}",
                        usable_options(allowed)
                    ),
                );
            }
        }
        let Some(choice) = self.string(table, field, "store") else {
            if table.get("store").is_none() {
                self.problem(
                    item.span().map(|s| s.start),
                    format!(
                        "[{field}] says nothing about how it is stored: add `store = \"{}\"`",
                        allowed.join("\"` or `\"")
                    ),
                );
            }
            return None;
        };
        if !allowed.contains(&choice.as_str()) {
            let hint = nearest(&choice, allowed);
            let reason = match [
                "keep",
                "drop",
                "pseudonym",
                "hmac",
                "aes-siv",
                "sha256",
                "truncate",
                "generalise",
                "network",
                "ipcrypt-pfx",
            ]
            .contains(&choice.as_str())
            {
                true => format!("`{choice}` is not a way to store `{field}`"),
                false => format!("`{choice}` is not a way to store anything"),
            };
            self.problem(
                self.value_at(table, "store"),
                format!("{reason}{hint}; `{field}` may be {}", allowed.join(", ")),
            );
            return None;
        }
        for (key, belongs) in OPTIONS {
            if table.get(key).is_some() && !belongs.contains(&choice.as_str()) {
                let fix = match belongs.len() {
                    1 => format!("it applies only to store = \"{}\"", belongs[0]),
                    _ => format!(
                        "it applies only to keyed pseudonyms ({})",
                        belongs.join(", ")
                    ),
                };
                self.problem(self.key_at(table, key), format!("[{field}] `{key}` does nothing with store = \"{choice}\": {fix}; remove it"));
            }
        }
        self.store(field, table, &choice)
    }

    /// The store a valid choice makes, with its options.
    fn store(&mut self, field: &str, table: &dyn TableLike, choice: &str) -> Option<Store> {
        let scope = self.scope(field, table);
        Some(match choice {
            "keep" => Store::Keep,
            "drop" => Store::Drop,
            "pseudonym" | "hmac" => Store::Hmac { scope: scope? },
            "aes-siv" => Store::AesSiv { scope: scope? },
            "ipcrypt-pfx" => Store::IpcryptPfx,
            "network" => Store::Network {
                v4: self.integer(table, field, "prefix_v4", 1..=32, 24)?,
                v6: self.integer(table, field, "prefix_v6", 1..=128, 48)?,
                scope: scope?,
            },
            "sha256" => {
                if table.get("unkeyed_ok").and_then(Item::as_bool) != Some(true) {
                    let at = self
                        .value_at(table, "unkeyed_ok")
                        .or(self.value_at(table, "store"));
                    self.problem(at, format!("[{field}] store = \"sha256\" is unkeyed: anyone can find IPv4 addresses and guessable ids from it by brute force; use \"hmac\", or add `unkeyed_ok = true` for a table already built that way"));
                    return None;
                }
                Store::Sha256
            }
            "generalise" => Store::Generalise {
                parts: self.integer(table, field, "parts", 1..=2, 2)?,
            },
            "truncate" => Store::Truncate(self.grain(field, table)?),
            _ => return None,
        })
    }

    fn scope(&mut self, field: &str, table: &dyn TableLike) -> Option<Scope> {
        let Some(text) = self.string(table, field, "scope") else {
            return table.get("scope").is_none().then_some(Scope::All);
        };
        const SCOPES: [&str; 4] = ["all", "month", "week", "day"];
        match text.as_str() {
            "all" => Some(Scope::All),
            "month" => Some(Scope::Month),
            "week" => Some(Scope::Week),
            "day" => Some(Scope::Day),
            other => {
                let hint = nearest(other, &SCOPES);
                self.problem(
                    self.value_at(table, "scope"),
                    format!(
                        "[{field}] scope `{other}` is not a period{hint}; it may be {}",
                        SCOPES.join(", ")
                    ),
                );
                None
            }
        }
    }

    fn grain(&mut self, field: &str, table: &dyn TableLike) -> Option<Grain> {
        let allowed = grains(field);
        let Some(text) = self.string(table, field, "to") else {
            if table.get("to").is_none() {
                self.problem(
                    self.value_at(table, "store"),
                    format!(
                        "[{field}] store = \"truncate\" needs `to = \"{}\"`",
                        allowed.join("\"` or `\"")
                    ),
                );
            }
            return None;
        };
        if !allowed.contains(&text.as_str()) {
            let hint = nearest(&text, allowed);
            let why = match (field, text.as_str()) {
                ("create_date", "day") => {
                    " (create_date is a date already: write store = \"keep\")".to_string()
                }
                _ => String::new(),
            };
            self.problem(
                self.value_at(table, "to"),
                format!(
                    "[{field}] cannot be truncated to `{text}`{hint}{why}; `to` may be {}",
                    allowed.join(", ")
                ),
            );
            return None;
        }
        Some(match text.as_str() {
            "hour" => Grain::Hour,
            "day" => Grain::Day,
            _ => Grain::Month,
        })
    }

    /// A string value, or a problem if it is there and not a string.
    fn string(&mut self, table: &dyn TableLike, field: &str, key: &str) -> Option<String> {
        let item = table.get(key)?;
        match item.as_str() {
            Some(text) => Some(text.to_string()),
            None => {
                self.problem(
                    self.value_at(table, key),
                    format!("[{field}] `{key}` must be a string in quotes"),
                );
                None
            }
        }
    }

    fn integer(
        &mut self,
        table: &dyn TableLike,
        field: &str,
        key: &str,
        range: std::ops::RangeInclusive<u8>,
        default: u8,
    ) -> Option<u8> {
        let Some(item) = table.get(key) else {
            return Some(default);
        };
        match item
            .as_integer()
            .and_then(|n| u8::try_from(n).ok())
            .filter(|n| range.contains(n))
        {
            Some(n) => Some(n),
            None => {
                self.problem(
                    self.value_at(table, key),
                    format!(
                        "[{field}] `{key}` must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    fn key_at(&self, table: &dyn TableLike, key: &str) -> Option<usize> {
        table.key(key).and_then(|k| k.span()).map(|s| s.start)
    }

    fn value_at(&self, table: &dyn TableLike, key: &str) -> Option<usize> {
        table
            .get(key)
            .and_then(Item::span)
            .map(|s| s.start)
            .or_else(|| self.key_at(table, key))
    }

    /// Record a problem at a byte offset of the text.
    fn problem(&mut self, at: Option<usize>, message: String) {
        let line = at.map(|offset| {
            self.text[..offset.min(self.text.len())]
                .matches('\n')
                .count()
                + 1
        });
        self.problems.push(Problem { line, message });
    }
}

/// The options a field's choices can take, for a list of its keys.
fn usable_options(allowed: &[&str]) -> String {
    let options: Vec<&str> = OPTIONS
        .iter()
        .filter(|(_, belongs)| belongs.iter().any(|b| allowed.contains(b)))
        .map(|(key, _)| *key)
        .collect();
    match options.is_empty() {
        true => String::new(),
        false => format!(", {}", options.join(", ")),
    }
}
