//! A validated login under a policy: the value each column would hold, and the row's period.
//! What `preview` prints; nothing raw of `ip` or `device_id` comes out unless the policy keeps it
//! (it never does: their choices are all pseudonyms or drop).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

use super::{period, Grain, Policy, Scope, Store};
use crate::mask::{
    Field, KeyError, KeyRing, MaskedLogin, Masker, NetworkMaskMode, NetworkMasker, NetworkPrefixes,
    PeriodKeyUse, PeriodKeys, RowPolicy, StoredRow, StrategyName, WrappedPeriodKey,
};
use crate::validate::LoginEvent;

/// The login `check_keys` makes a row of.
pub(super) const SAMPLE_LOGIN: &str =
    r#"{"user_id":"u","device_type":"ios","ip":"192.0.2.1","device_id":"d"}"#;

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
    /// Whether a field is `aes-siv` with a scope: sealed under random period keys.
    sealed: bool,
    /// The period keys handed over so far (`None`: shredded), as maskers.
    period_keys: RwLock<HashMap<String, Option<Arc<Masker>>>>,
}

/// What a row's scoped `aes-siv` values are sealed with.
enum Sealer {
    /// Its period's key.
    Key(Arc<Masker>),
    /// Nothing: the key is shredded, or not known yet (`use`).
    Nothing(PeriodKeyUse),
}

impl Applier {
    /// The policy with these keys (every choice but `keep` and `drop` needs them).
    pub fn new(policy: Policy, keys: KeyRing) -> Applier {
        let scope = policy
            .fields()
            .filter_map(|(_, s)| s.scope())
            .find(|s| *s != Scope::All)
            .unwrap_or(Scope::All);
        let sealed = policy.seals_by_period();
        Applier {
            policy,
            keys,
            scope,
            rings: Mutex::new(HashMap::new()),
            maskers: Mutex::new(HashMap::new()),
            sealed,
            period_keys: RwLock::new(HashMap::new()),
        }
    }

    /// The policy's fingerprint.
    pub fn fingerprint(&self) -> String {
        self.policy.fingerprint()
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
        let sealer = self.sealer(at);
        let ip = self.ip(&event, store("ip"), at, &sealer)?;
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
            masked_device_id: self.masked(
                Field::DeviceId,
                event.device_id.trim(),
                store("device_id"),
                at,
                &sealer,
            )?,
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
            period_key: match sealer {
                Sealer::Key(_) => PeriodKeyUse::Sealed,
                Sealer::Nothing(state) => state,
            },
            subject: matches!(store("user_id"), Store::Hmac { .. }).then(|| event.user_id.clone()),
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
                // `preview` has no database to keep period keys in: it says what run would do.
                let sealed = matches!(store, Store::AesSiv { scope } if scope != Scope::All);
                let value = match (sealed, login.period_key, &login.period) {
                    (true, PeriodKeyUse::Missing, Some(period)) => {
                        Some(format!("(aes-siv under the key of {period}, made by run)"))
                    }
                    _ => value,
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
        bound(&mut rings, 1);
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
        Ok(Some(super::subject::pseudonym(id, key, user_id)))
    }

    fn ip(
        &self,
        event: &LoginEvent,
        store: Store,
        period: Option<&str>,
        sealer: &Sealer,
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
                sealer,
            )?,
        })
    }

    /// How this period's scoped `aes-siv` values are sealed.
    fn sealer(&self, period: Option<&str>) -> Sealer {
        let (true, Some(period)) = (self.sealed, period) else {
            return Sealer::Nothing(PeriodKeyUse::None);
        };
        let keys = self.period_keys.read().unwrap_or_else(|e| e.into_inner());
        match keys.get(period) {
            Some(Some(masker)) => Sealer::Key(masker.clone()),
            Some(None) => Sealer::Nothing(PeriodKeyUse::Shredded),
            None => Sealer::Nothing(PeriodKeyUse::Missing),
        }
    }

    /// `hmac`, `aes-siv` or `sha256` of a canonical value; NULL for `drop`.
    fn masked(
        &self,
        field: Field,
        canonical: &str,
        store: Store,
        period: Option<&str>,
        sealer: &Sealer,
    ) -> Result<Option<String>, KeyError> {
        let (strategy, scope) = match store {
            // Under the period's random key, which `shred` can destroy (NULL once it has).
            Store::AesSiv { scope } if scope != Scope::All && !shredded_under_ring(sealer) => {
                return Ok(match sealer {
                    Sealer::Key(masker) => Some(masker.mask(field, canonical)),
                    Sealer::Nothing(_) => None,
                });
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
                let mut maskers = self.maskers.lock().unwrap_or_else(|e| e.into_inner());
                bound(&mut maskers, 1);
                maskers.insert((at, strategy), masker.clone());
                masker
            }
        };
        Ok(Some(masker.mask(field, canonical)))
    }
}

/// The simulation's mutant `SealShreddedUnderRing`: a shredded period's value sealed under the
/// ring (never in a release).
fn shredded_under_ring(_sealer: &Sealer) -> bool {
    #[cfg(feature = "sim-mutants")]
    if crate::mutants::active(crate::mutants::Mutant::SealShreddedUnderRing) {
        return matches!(_sealer, Sealer::Nothing(PeriodKeyUse::Shredded));
    }
    false
}

/// Periods whose rings, maskers and keys an applier keeps: a backfill of years of daily periods
/// would otherwise keep them all. Past it the cache starts again (derived rings and maskers are
/// made again, period keys read again, on demand).
const PERIODS_KEPT: usize = 256;

/// Empty `cache` if `adding` more entries would take it past [`PERIODS_KEPT`].
fn bound<K, V>(cache: &mut HashMap<K, V>, adding: usize) {
    if cache.len() + adding > PERIODS_KEPT {
        cache.clear();
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

    fn new_period_keys(&self, periods: &[String]) -> Vec<(String, WrappedPeriodKey)> {
        (periods.iter())
            .map(|p| (p.clone(), crate::mask::new_period_key(&self.keys, p)))
            .collect()
    }

    fn use_period_keys(&self, keys: &PeriodKeys) -> Result<(), KeyError> {
        let mut opened = Vec::with_capacity(keys.len());
        for (period, wrapped) in keys {
            let masker = match wrapped {
                Some(w) => Some(Arc::new(crate::mask::period_masker(&self.keys, period, w)?)),
                None => None,
            };
            opened.push((period.clone(), masker));
        }
        let mut held = self.period_keys.write().unwrap_or_else(|e| e.into_inner());
        // The keys just read all stay: the rows that needed them are made next.
        bound(&mut held, opened.len());
        held.extend(opened);
        Ok(())
    }
}
