//! A validated login under a policy: the value each column would hold, and the row's period.
//! What `preview` prints; nothing raw of `ip` or `device_id` comes out unless the policy keeps it
//! (it never does: their choices are all pseudonyms or drop).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{period, Grain, Policy, Scope, Store};
use crate::mask::{
    Field, KeyError, KeyRing, MaskedLogin, Masker, NetworkMaskMode, NetworkMasker, NetworkPrefixes,
    RowPolicy, StoredRow, StrategyName,
};
use crate::validate::LoginEvent;

/// The login `check_keys` makes a row of.
pub(super) const SAMPLE_LOGIN: &str =
    r#"{"user_id":"u","device_type":"ios","ip":"192.0.2.1","device_id":"d"}"#;

/// Domain of `user_id` pseudonyms, apart from every other field's.
const USER_ID_DOMAIN: &[u8] = b"login-etl/v1/user_id";

/// What a row would hold: `(column, value)` in the table's order (`None`: NULL), and its period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The period of its time-scoped pseudonyms, if the policy scopes any.
    pub period: Option<String>,
    /// Each column the policy fills, with its value.
    pub columns: Vec<(&'static str, Option<String>)>,
}

/// Applies one policy with one key ring; period key rings are derived once each and kept.
#[derive(Debug)]
pub struct Applier {
    policy: Policy,
    keys: KeyRing,
    scope: Scope,
    rings: Mutex<HashMap<String, Arc<KeyRing>>>,
    /// Maskers by period (`""`: all time) and strategy, made once each.
    maskers: Mutex<HashMap<(String, StrategyName), Arc<Masker>>>,
}

impl Applier {
    /// The policy with these keys (every choice but `keep` and `drop` needs them).
    pub fn new(policy: Policy, keys: KeyRing) -> Applier {
        let scope = policy
            .fields()
            .filter_map(|(_, s)| s.scope())
            .find(|s| *s != Scope::All)
            .unwrap_or(Scope::All);
        Applier {
            policy,
            keys,
            scope,
            rings: Mutex::new(HashMap::new()),
            maskers: Mutex::new(HashMap::new()),
        }
    }

    /// The policy's fingerprint.
    pub fn fingerprint(&self) -> String {
        self.policy.fingerprint()
    }

    /// Whether `run` can store rows under this policy: an `aes-siv` pseudonym scoped to a period
    /// needs a random key per period that `shred` can destroy, and a `user_id` pseudonym needs
    /// `erase` to find rows by it; neither is built yet.
    pub fn runnable(&self) -> Result<(), String> {
        if matches!(self.policy.store("user_id"), Some(Store::Hmac { .. })) {
            return Err(
                "`user_id` is a pseudonym: run cannot store it yet (erase finds a \
                        subject's rows by the id as it arrived); use store = \"keep\" for now"
                    .into(),
            );
        }
        match self
            .policy
            .fields()
            .find(|(_, store)| matches!(store, Store::AesSiv { scope } if *scope != Scope::All))
        {
            Some((field, _)) => Err(format!(
                "`{field}` is aes-siv with a scope: run cannot store it yet (its per-period keys, \
                 which `shred` destroys, are not built); use scope = \"all\" or hmac for now"
            )),
            None => Ok(()),
        }
    }

    /// Make one row now, so that `run` knows before its first message that every key the policy
    /// needs can be made (each period's are derived the same way).
    pub fn check_keys(&self) -> Result<(), KeyError> {
        match crate::validate::decode(SAMPLE_LOGIN) {
            Ok(event) => self.row(event, Utc::now()).map(|_| ()),
            // `the_start_check_makes_a_row` keeps the sample valid.
            Err(_) => Ok(()),
        }
    }

    /// The row `event` (sent at `sent_at`) becomes under the policy.
    pub fn row(&self, event: LoginEvent, sent_at: DateTime<Utc>) -> Result<StoredRow, KeyError> {
        let period = period::label(self.scope, sent_at);
        let at = period.as_deref();
        let store = |field: &str| self.policy.store(field).unwrap_or(Store::Drop);
        let ip = self.ip(&event, store("ip"), at)?;
        // The column is `describe::column`'s: network pseudonyms and ipcrypt-pfx go where
        // `--ip-network-mask` puts them, so `reveal`, `rekey` and the reports find them.
        let (masked_ip, masked_ip_network) = match super::describe::column("ip", store("ip")) {
            "masked_ip_network" => (None, ip),
            _ => (ip, None),
        };
        let login = MaskedLogin {
            user_id: self
                .user_id(&event.user_id, store("user_id"), at)?
                .unwrap_or_default(),
            device_type: kept(store("device_type"), Some(&event.device_type)),
            masked_ip,
            masked_device_id: self.device_id(event.device_id.trim(), store("device_id"), at)?,
            locale: kept(store("locale"), event.locale.as_deref()),
            app_version: match store("app_version") {
                Store::Generalise { parts } => {
                    event.app_version.as_deref().map(|v| generalise(v, parts))
                }
                store => kept(store, event.app_version.as_deref()),
            },
            masked_ip_network,
            period,
            stored_sent_at: Some(truncate_time(sent_at, store("sent_at"))),
        };
        Ok(StoredRow {
            login,
            create_date: truncate_date(sent_at.date_naive(), store("create_date")),
        })
    }

    /// What `preview` shows: the row `event` (sent at `sent_at`) becomes, column by column in
    /// the policy's order.
    pub fn apply(&self, event: &LoginEvent, sent_at: DateTime<Utc>) -> Result<Stored, KeyError> {
        let row = self.row(event.clone(), sent_at)?;
        Ok(self.stored(&row.login, row.create_date, sent_at))
    }

    /// The columns of a row the policy made (`login`, dated `create_date`, sent at `sent_at`),
    /// in the policy's order: what `preview` prints.
    pub fn stored(
        &self,
        login: &MaskedLogin,
        create_date: NaiveDate,
        sent_at: DateTime<Utc>,
    ) -> Stored {
        let columns = (self.policy.fields())
            .map(|(field, store)| {
                let column = super::describe::column(field, store);
                let value = match column {
                    "user_id" => Some(login.user_id.clone()),
                    "device_type" => login.device_type.clone(),
                    "masked_ip" => login.masked_ip.clone(),
                    "masked_ip_network" => login.masked_ip_network.clone(),
                    "masked_device_id" => login.masked_device_id.clone(),
                    "locale" => login.locale.clone(),
                    "app_version" => login.app_version.clone(),
                    "create_date" => Some(create_date.to_string()),
                    _ => Some(login.stored_sent_at.unwrap_or(sent_at).to_rfc3339()),
                };
                (column, value)
            })
            .collect();
        Stored {
            period: login.period.clone(),
            columns,
        }
    }

    /// The key ring masks of a field with `scope` are made under.
    fn ring(&self, scope: Scope, period: Option<&str>) -> Result<Arc<KeyRing>, KeyError> {
        let (Some(period), false) = (period, scope == Scope::All) else {
            return Ok(Arc::new(self.keys.clone()));
        };
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ring) = rings.get(period) {
            return Ok(ring.clone());
        }
        let ring = Arc::new(period::ring_for(&self.keys, period)?);
        rings.insert(period.to_string(), ring.clone());
        Ok(ring)
    }

    fn user_id(
        &self,
        user_id: &str,
        store: Store,
        period: Option<&str>,
    ) -> Result<Option<String>, KeyError> {
        let Store::Hmac { scope } = store else {
            return Ok(kept(store, Some(user_id)));
        };
        let ring = self.ring(scope, period)?;
        let (id, key) = ring.active();
        let mut mac =
            Hmac::<Sha256>::new_from_slice(key.bytes()).expect("HMAC accepts any key length");
        mac.update(USER_ID_DOMAIN);
        mac.update(&[0]);
        mac.update(user_id.as_bytes());
        Ok(Some(format!(
            "{id}:{}",
            hex::encode(mac.finalize().into_bytes())
        )))
    }

    fn ip(
        &self,
        event: &LoginEvent,
        store: Store,
        period: Option<&str>,
    ) -> Result<Option<String>, KeyError> {
        let network = |mode, prefixes, ring: &KeyRing| {
            NetworkMasker::new(mode, prefixes, ring).map(|m| m.map(|m| m.mask(&event.ip)))
        };
        Ok(match store {
            Store::Network { v4, v6, scope } => network(
                NetworkMaskMode::Hmac,
                NetworkPrefixes { v4, v6 },
                &*self.ring(scope, period)?,
            )?,
            Store::IpcryptPfx => network(
                NetworkMaskMode::IpcryptPfx,
                NetworkPrefixes { v4: 24, v6: 48 },
                &self.keys,
            )?,
            store => self.masked(
                Field::Ip,
                &event.ip.to_canonical().to_string(),
                store,
                period,
            )?,
        })
    }

    fn device_id(
        &self,
        device_id: &str,
        store: Store,
        period: Option<&str>,
    ) -> Result<Option<String>, KeyError> {
        self.masked(Field::DeviceId, device_id, store, period)
    }

    /// `hmac`, `aes-siv` or `sha256` of a canonical value; NULL for `drop`.
    fn masked(
        &self,
        field: Field,
        canonical: &str,
        store: Store,
        period: Option<&str>,
    ) -> Result<Option<String>, KeyError> {
        let (strategy, scope) = match store {
            // Under a random key per period, kept wrapped so that `shred` can destroy it: not
            // derivable from the ring, so not made here.
            Store::AesSiv { scope } if scope != Scope::All => {
                let period = period.unwrap_or_default();
                return Ok(Some(format!(
                    "(aes-siv under the key of {period}, made by run)"
                )));
            }
            Store::Hmac { scope } => (StrategyName::HmacSha256, scope),
            Store::AesSiv { scope } => (StrategyName::AesSiv, scope),
            Store::Sha256 => (StrategyName::Sha256, Scope::All),
            _ => return Ok(None),
        };
        let at = match scope {
            Scope::All => String::new(),
            _ => period.unwrap_or_default().to_string(),
        };
        let cached = (self.maskers.lock().unwrap_or_else(|e| e.into_inner()))
            .get(&(at.clone(), strategy))
            .cloned();
        let masker = match cached {
            Some(masker) => masker,
            None => {
                let masker = Arc::new(Masker::new(strategy, Some(&*self.ring(scope, period)?))?);
                (self.maskers.lock().unwrap_or_else(|e| e.into_inner()))
                    .insert((at, strategy), masker.clone());
                masker
            }
        };
        Ok(Some(masker.mask(field, canonical)))
    }
}

/// The value for `keep`, NULL for `drop`.
fn kept(store: Store, value: Option<&str>) -> Option<String> {
    match store {
        Store::Drop => None,
        _ => value.map(str::to_string),
    }
}

/// The first `parts` dot-separated parts of a version (`2.3.0` → `2.3`).
pub(crate) fn generalise(version: &str, parts: u8) -> String {
    version
        .split('.')
        .take(parts as usize)
        .collect::<Vec<_>>()
        .join(".")
}

fn truncate_date(date: NaiveDate, store: Store) -> NaiveDate {
    match store {
        Store::Truncate(Grain::Month) => date.with_day(1).unwrap_or(date),
        _ => date,
    }
}

fn truncate_time(at: DateTime<Utc>, store: Store) -> DateTime<Utc> {
    let hour = at
        .with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_minute(0));
    match store {
        Store::Truncate(Grain::Hour) => hour.unwrap_or(at),
        Store::Truncate(Grain::Day) => hour.and_then(|t| t.with_hour(0)).unwrap_or(at),
        _ => at,
    }
}

impl RowPolicy for Applier {
    fn row(&self, event: LoginEvent, sent_at: DateTime<Utc>) -> StoredRow {
        // Deriving a period's ring and making its maskers cannot fail for a ring that parsed
        // (`run` proves it at start with `Applier::row` on a sample login).
        Applier::row(self, event, sent_at).expect("the policy's keys were checked at start")
    }
}
