//! The simulated database behind `pipeline::Store`: the ledger, rows, quarantine entries and solo
//! attempts, written as `sink/postgres/write.rs` writes them — the same pure steps
//! (`redrive::ledger_claims`, `candidates`, `entries_to_read`, `plan`) decide what lands. Faults:
//! a transaction that fails before COMMIT, one whose COMMIT applied but whose reply was lost, a
//! stall, a lost connection, a read-only server (failover). Rows are refused by predicates over
//! the user ids of one transaction: alone (`refuse-…`), in pairs (`pair-…` twice), by count (three
//! `count-…`), as constraints, exclusion constraints and counting triggers would.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rand::Rng;

use super::period_keys;
use super::world::{Entry, Row, Shared, World};
use crate::mask::{PeriodKeys, WrappedPeriodKey};
use crate::message::{MessageId, Outcome, OutcomeKind};
use crate::pipeline::Store;
use crate::sink::postgres::redrive;
use crate::sink::{SinkError, WriteReport};

pub(super) struct SimStore {
    pub(super) world: Shared,
}

fn transient(what: &str) -> SinkError {
    SinkError::Transient {
        target: "sim@db".into(),
        message: format!("simulated: {what}"),
    }
}

/// Why the database refuses these rows together, if it does.
pub(super) fn refusal<'a>(users: impl Iterator<Item = &'a str>) -> Option<String> {
    let (mut pairs, mut counted) = (HashSet::new(), 0);
    for user in users {
        if user.starts_with("refuse-") {
            return Some("SQLSTATE 23514, constraint `no_refused_users`".into());
        }
        if user.starts_with("pair-") && !pairs.insert(user) {
            return Some("SQLSTATE 23P01, constraint `one_login_per_pair`".into());
        }
        counted += usize::from(user.starts_with("count-"));
        if counted > 2 {
            return Some("SQLSTATE 23514, trigger `at_most_two_counted`".into());
        }
    }
    None
}

fn user_of(o: &Outcome) -> Option<&str> {
    match &o.kind {
        OutcomeKind::Row { login, .. } => Some(login.user_id.as_str()),
        OutcomeKind::Quarantine(_) => None,
    }
}

impl SimStore {
    /// The faults every statement may meet; `Err` before anything is applied.
    async fn connect(&self, kind: &'static str) -> Result<(), SinkError> {
        let stall = {
            let mut w = self.world.lock();
            let since = w.t0.map_or(Duration::ZERO, |t0| t0.elapsed());
            if w.faults_on && w.faults.read_only_at(since) {
                w.count("fault.read_only".into());
                return Err(SinkError::Failover {
                    target: "sim@db".into(),
                    message: "simulated: cannot execute INSERT in a read-only transaction".into(),
                });
            }
            if w.strike("connection_lost") {
                return Err(transient("connection closed"));
            }
            let longest = w.faults.stall.as_millis() as u64;
            match w.strike("write_stalls") {
                true => Duration::from_millis(w.rng().gen_range(1..=longest.max(1))),
                false => Duration::from_millis(5),
            }
        };
        let _busy = self.world.busy(kind);
        tokio::time::sleep(stall).await;
        Ok(())
    }
}

impl SimStore {
    /// The transaction: fails before COMMIT, is refused, or commits (its reply maybe lost).
    fn write_now(&self, outcomes: &[&Outcome], solo: bool) -> Result<WriteReport, SinkError> {
        let mut w = self.world.lock();
        if w.strike("write_fails_before_commit") {
            return Err(transient("the server closed the connection before COMMIT"));
        }
        period_keys::shred_first(&mut w, outcomes);
        period_keys::stale(&w, outcomes)?;
        period_keys::check_committed(&mut w, outcomes);
        let changes = plan_write(&w, outcomes)?;
        let report = changes.report.clone();
        apply(&mut w, changes, outcomes, solo);
        let ids: Vec<&str> = outcomes.iter().map(|o| o.message_id.as_str()).collect();
        w.event(&format!("commit {ids:?} {report:?}"));
        w.crash_here("commit");
        if w.strike("write_fails_after_commit") {
            return Err(transient("connection lost after COMMIT was sent"));
        }
        Ok(report)
    }
}

/// What a write of `outcomes` does against the database as it is: the report and, unless
/// refused, the changes (applied by `apply`).
fn plan_write(w: &World, outcomes: &[&Outcome]) -> Result<Planned, SinkError> {
    let ledger = redrive::ledger_claims(outcomes);
    let new_ids: HashSet<String> = (ledger.keys())
        .filter(|id| !w.db.ledger.contains_key(**id))
        .map(|id| id.to_string())
        .collect();
    let reclaimed: HashSet<String> = (ledger.keys())
        .filter(|id| !new_ids.contains(**id) && w.db.ledger.get(**id) == Some(&"quarantined"))
        .map(|id| id.to_string())
        .collect();
    let (candidates, deliveries) = redrive::candidates(outcomes, &new_ids, &reclaimed);
    let entries: HashMap<(String, i32), bool> = redrive::entries_to_read(&candidates)
        .into_iter()
        .filter_map(|k| w.db.entries.get(&k).map(|e| (k, e.resolved)))
        .collect();
    let plan = redrive::plan(&candidates, &entries);
    if let Some(reason) = refusal(plan.rows.iter().filter_map(|o| user_of(o))) {
        return Err(SinkError::Rejected { reason });
    }
    let mut changes = Planned::default();
    for (id, kind) in &ledger {
        if new_ids.contains(*id) {
            changes.claims.push((id.to_string(), kind));
        }
    }
    for o in &plan.rows {
        if let OutcomeKind::Row {
            login,
            extra_fields,
            ..
        } = &o.kind
        {
            let (id, element) = o.message_id.entry(o.element);
            let mut texts = vec![
                login.user_id.clone(),
                format!("{:?}", login.device_type),
                format!("{:?}", login.masked_ip),
                format!("{:?}", login.masked_device_id),
                format!("{:?} {:?}", login.locale, login.app_version),
                format!("{:?}", login.masked_ip_network),
            ];
            texts.extend(extra_fields.as_ref().map(|v| v.to_string()));
            changes.rows.push(Row {
                identity: (id.to_string(), element),
                landed_as: o.message_id.0.clone(),
                user_id: login.user_id.clone(),
                texts,
            });
        }
    }
    let mut report = WriteReport {
        duplicates: deliveries.saturating_sub(plan.acted.len() as u64),
        retried: plan.retried.len() as u64,
        resolved: plan.resolved.len() as u64,
        rows: changes.rows.len() as u64,
        ..WriteReport::default()
    };
    for (o, q) in &plan.new_entries {
        // The real INSERT's key: the entry the login stands for, ON CONFLICT DO NOTHING.
        let (id, element) = o.message_id.entry(o.element);
        let key = (id.to_string(), element);
        if w.db.entries.contains_key(&key) || changes.entries.iter().any(|(k, _)| *k == key) {
            continue;
        }
        *report
            .quarantined_by_code
            .entry(q.rejection.code.as_str().to_string())
            .or_default() += 1;
        report.quarantined += 1;
        let entry = Entry {
            code: q.rejection.code.as_str().to_string(),
            reason: q.rejection.message.clone(),
            body: q.body_masked.clone(),
            user_id: q.user_id.clone(),
            attempts: 1,
            resolved: false,
        };
        changes.entries.push((key, entry));
    }
    changes.retried = (plan.retried.iter())
        .map(|(k, q)| {
            (
                k.clone(),
                q.rejection.code.as_str().to_string(),
                q.rejection.message.clone(),
            )
        })
        .collect();
    changes.resolved = plan.resolved.iter().cloned().collect();
    changes.landed = plan.landed.iter().map(|id| id.to_string()).collect();
    changes.report = report;
    Ok(changes)
}

#[derive(Default)]
struct Planned {
    claims: Vec<(String, &'static str)>,
    rows: Vec<Row>,
    entries: Vec<((String, i32), Entry)>,
    retried: Vec<((String, i32), String, String)>,
    resolved: Vec<(String, i32)>,
    landed: Vec<String>,
    report: WriteReport,
}

fn apply(w: &mut World, changes: Planned, outcomes: &[&Outcome], solo: bool) {
    if solo {
        for o in outcomes {
            w.db.attempts.remove(o.message_id.as_str());
        }
    }
    for (id, kind) in changes.claims {
        w.db.ledger.insert(id, kind);
    }
    w.db.rows.extend(changes.rows);
    w.db.entries.extend(changes.entries);
    for (key, code, reason) in changes.retried {
        if let Some(e) = w.db.entries.get_mut(&key).filter(|e| !e.resolved) {
            e.attempts += 1;
            (e.code, e.reason) = (code, reason);
        }
    }
    for key in changes.resolved {
        if let Some(e) = w.db.entries.get_mut(&key) {
            e.resolved = true;
        }
    }
    for id in changes.landed {
        w.db.ledger.insert(id, "row");
    }
}

impl Store for SimStore {
    async fn write(&mut self, outcomes: &[&Outcome], solo: bool) -> Result<WriteReport, SinkError> {
        if outcomes.is_empty() {
            return Ok(WriteReport::default());
        }
        self.connect("write").await?;
        let result = self.write_now(outcomes, solo);
        self.world.halt().await;
        result
    }

    async fn probe(&mut self, outcomes: &[&Outcome]) -> Result<(), SinkError> {
        self.connect("probe").await?;
        let result = {
            let mut w = self.world.lock();
            let result = plan_write(&w, outcomes).map(drop);
            w.crash_here("probe");
            result
        };
        self.world.halt().await;
        result
    }

    async fn record_solo_attempt(&mut self, id: &MessageId) -> Result<u32, SinkError> {
        self.connect("solo_attempt").await?;
        let attempts = {
            let mut w = self.world.lock();
            let attempts = w.db.attempts.entry(id.0.clone()).or_default();
            *attempts += 1;
            let attempts = *attempts;
            w.event(&format!("solo attempt {id} {attempts}"));
            w.crash_here("solo_attempt");
            attempts
        };
        self.world.halt().await;
        Ok(attempts)
    }

    async fn period_keys(
        &mut self,
        periods: &[String],
        fresh: &[(String, WrappedPeriodKey)],
    ) -> Result<PeriodKeys, SinkError> {
        self.connect("period_keys").await?;
        let keys = period_keys::read(&mut self.world.lock(), periods, fresh);
        self.world.halt().await;
        Ok(keys)
    }

    async fn not_to_forward(&mut self, refused: &[&Outcome]) -> Result<HashSet<usize>, SinkError> {
        self.connect("read").await?;
        let w = self.world.lock();
        Ok((refused.iter().enumerate())
            .filter(|(_, o)| {
                let (id, element) = (&o.message_id, o.element);
                let (entry, el) = id.entry(element);
                w.db.entries.contains_key(&(entry.to_string(), el))
                    || w.db.ledger.get(id.as_str()) == Some(&"row")
            })
            .map(|(i, _)| i)
            .collect())
    }
}
