//! The invariants checked at the end of a run (those the queue sees are checked at every call, in
//! `queue.rs`): every login sent is a row exactly once or an open quarantine entry exactly once,
//! never both, and what it must be (a valid login lands unless the database refuses it or it is
//! poison; an invalid one is quarantined); a login quarantined as refused would be refused again
//! with what landed of its message (minimal refusal); the ledger is exactly the set of processed
//! ids; no raw IP or device id in any row, quarantine entry or log line.

use std::collections::{BTreeMap, BTreeSet};

use super::shapes::{Expect, Spec};
use super::store::refusal;
use super::world::World;

/// The violations of the final state.
pub(super) fn at_end(
    w: &World,
    sent: &[(String, Spec)],
    processed: &BTreeSet<String>,
    logs: &str,
) -> Vec<String> {
    let mut bad = Vec::new();
    let mut rows: BTreeMap<(String, i32), Vec<&super::world::Row>> = BTreeMap::new();
    for row in &w.db.rows {
        rows.entry(row.identity.clone()).or_default().push(row);
    }
    // Open entries by identity (a redriven dead letter's entry `<id>#<i>`/-1 stands for (id, i)).
    let mut open: BTreeMap<(String, i32), Vec<&super::world::Entry>> = BTreeMap::new();
    for ((id, element), entry) in &w.db.entries {
        if !entry.resolved {
            let message = crate::message::MessageId(id.clone());
            let (id, el) = match *element {
                -1 => message.entry(None),
                el => (id.as_str(), el),
            };
            open.entry((id.to_string(), el)).or_default().push(entry);
        }
    }
    for (id, spec) in sent {
        let expected: Vec<(i32, bool, Option<&str>)> = match &spec.expect {
            Expect::Whole(valid) => vec![(-1, *valid, spec.users.first().map(String::as_str))],
            Expect::Elements(valid) => (valid.iter().enumerate())
                .map(|(i, v)| (i as i32, *v, spec.users.get(i).map(String::as_str)))
                .collect(),
        };
        // Poison: the whole message quarantined as too_many_receives stands for all its logins.
        let key = |el: i32| (id.clone(), el);
        if let Some(whole) = open
            .get(&key(-1))
            .filter(|e| e.iter().any(|e| e.code == "too_many_receives"))
        {
            let landed = (0..expected.len() as i32).any(|el| rows.contains_key(&key(el)));
            if whole.len() != 1 || landed {
                bad.push(format!(
                    "{id}: quarantined as poison, and also landed or quarantined again"
                ));
            }
            continue;
        }
        let landed_here: Vec<&str> = (expected.iter())
            .flat_map(|(el, _, _)| rows.get(&key(*el)).into_iter().flatten())
            .filter(|r| r.landed_as == *id)
            .map(|r| r.user_id.as_str())
            .collect();
        for (el, valid, user) in &expected {
            let (r, q) = (rows.get(&key(*el)), open.get(&key(*el)));
            let (nr, nq) = (r.map_or(0, Vec::len), q.map_or(0, Vec::len));
            if nr + nq != 1 {
                bad.push(format!("login ({id}, {el}): {nr} rows and {nq} open quarantine entries, not exactly one"));
                continue;
            }
            match (q.and_then(|q| q.first()), valid) {
                (Some(e), true) if e.code == "rejected_by_database" => {
                    let with = landed_here.iter().copied().chain(user.iter().copied());
                    if refusal(with).is_none() {
                        bad.push(format!("login ({id}, {el}) was quarantined as refused, but commits with what landed of its message"));
                    }
                }
                (Some(e), true) if e.code != "too_many_receives" => {
                    bad.push(format!(
                        "login ({id}, {el}) is valid but was quarantined as {}: {}",
                        e.code, e.reason
                    ));
                }
                (None, false) => {
                    bad.push(format!("login ({id}, {el}) is invalid but landed as a row"))
                }
                _ => {}
            }
        }
    }
    let ledger: BTreeSet<String> = w.db.ledger.keys().cloned().collect();
    if &ledger != processed {
        let missing: Vec<_> = processed.difference(&ledger).take(3).collect();
        let extra: Vec<_> = ledger.difference(processed).take(3).collect();
        bad.push(format!(
            "the ledger is not the set of processed ids: missing {missing:?}, extra {extra:?}"
        ));
    }
    let pii: BTreeSet<&str> = sent
        .iter()
        .flat_map(|(_, s)| s.pii.iter().map(String::as_str))
        .collect();
    let stored = (w
        .db
        .rows
        .iter()
        .flat_map(|r| r.texts.iter().map(String::as_str)))
    .chain(w.db.entries.values().flat_map(|e| {
        [
            e.body.as_str(),
            e.reason.as_str(),
            e.user_id.as_deref().unwrap_or(""),
        ]
    }));
    for text in stored.chain(std::iter::once(logs)) {
        if let Some(value) = pii.iter().find(|v| text.contains(*v)) {
            let place = if text.len() == logs.len() {
                "the logs"
            } else {
                "a stored row or quarantine entry"
            };
            bad.push(format!("raw PII `{value}` in {place}"));
            break;
        }
    }
    bad
}
