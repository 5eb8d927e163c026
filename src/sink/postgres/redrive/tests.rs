//! The redrive plan against a model of the ledger, the quarantine table and the dead-letter queue:
//! generated messages (single logins and arrays, some broken whole, some logins fixed later)
//! delivered in copies, forwarded, redriven in copies after a fix, and redelivered.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::mask::MaskedLogin;
use crate::message::MessageId;
use crate::validate::{RejectCode, Rejection};

/// A login's fate: refused before the fix; refused after it too.
#[derive(Debug, Clone, Copy)]
struct Login {
    fails: bool,
    still_fails: bool,
}

/// A message: one login or an array; `broken`: before the fix its whole body is refused.
#[derive(Debug, Clone)]
struct Msg {
    logins: Vec<Login>,
    array: bool,
    broken: bool,
}

fn messages() -> impl Strategy<Value = Vec<Msg>> {
    let login = (any::<bool>(), any::<bool>()).prop_map(|(fails, still)| Login {
        fails,
        still_fails: fails && still,
    });
    let msg = (
        prop::collection::vec(login, 1..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(logins, array, broken)| Msg {
            array: array || logins.len() > 1,
            broken: broken && (array || logins.len() > 1),
            logins,
        });
    prop::collection::vec(msg, 1..6)
}

fn outcome(id: &str, element: Option<u32>, passes: bool) -> Outcome {
    let kind = if passes {
        OutcomeKind::Row {
            login: MaskedLogin {
                user_id: "u".into(),
                device_type: Some("ios".into()),
                masked_ip: Some("m".into()),
                masked_device_id: Some("d".into()),
                locale: None,
                app_version: None,
                masked_ip_network: None,
                period: None,
                stored_sent_at: None,
                period_key: crate::mask::PeriodKeyUse::None,
                subject: None,
            },
            create_date: chrono::NaiveDate::default(),
            sent_at: chrono::Utc::now(),
            existed_by: chrono::Utc::now(),
            extra_fields: None,
        }
    } else {
        OutcomeKind::Quarantine(QuarantineRecord {
            rejection: Rejection {
                code: RejectCode::InvalidFields,
                message: "refused".into(),
            },
            received_at: chrono::Utc::now(),
            sent_at: chrono::Utc::now(),
            existed_by: chrono::Utc::now(),
            receive_count: 1,
            body_bytes: 1,
            body_masked: "{}".into(),
            user_id: None,
            user_ids: Vec::new(),
            key_id: None,
        })
    };
    Outcome {
        message_id: MessageId(id.into()),
        kind,
        element,
        envelope: Default::default(),
        compressed: false,
        unknown_fields: vec![],
        ends_object: false,
    }
}

/// A delivery: its id and which original logins (message, index) it carries, in order.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    /// `None`: one login, the whole body; `Some`: an array.
    logins: Vec<(usize, usize)>,
    array: bool,
}

#[derive(Default)]
struct World {
    ledger: HashMap<String, bool>,           // id → landed a row
    entries: HashMap<EntryKey, (bool, u32)>, // (resolved, attempts)
    landed: Vec<(usize, usize)>,
    dead_letters: Vec<Delivery>,
    forwarded: HashMap<String, usize>,
}

impl World {
    fn deliver(&mut self, d: &Delivery, msgs: &[Msg], fixed: bool) {
        let outcomes: Vec<Outcome> = if !fixed && d.array && msgs[d.logins[0].0].broken {
            vec![outcome(&d.id, None, false)]
        } else {
            (d.logins.iter().enumerate())
                .map(|(i, &(m, l))| {
                    let login = msgs[m].logins[l];
                    let passes = !(if fixed {
                        login.still_fails
                    } else {
                        login.fails
                    });
                    outcome(&d.id, d.array.then_some(i as u32), passes)
                })
                .collect()
        };
        // Forward: the refused logins not quarantined before (nor of a message that landed).
        for o in &outcomes {
            if let OutcomeKind::Quarantine(_) = o.kind {
                let (id, el) = o.message_id.entry(o.element);
                let seen = self.entries.contains_key(&(id.to_string(), el))
                    || self.ledger.get(&d.id) == Some(&true);
                if !seen {
                    let dead = match o.element {
                        None => d.clone(),
                        Some(i) => Delivery {
                            id: o.message_id.of_element(i).0,
                            logins: vec![d.logins[i as usize]],
                            array: false,
                        },
                    };
                    *self.forwarded.entry(dead.id.clone()).or_default() += 1;
                    self.dead_letters.push(dead);
                }
            }
        }
        // Claim.
        let claim = match self.ledger.get(&d.id) {
            None => {
                let any_row = outcomes
                    .iter()
                    .any(|o| matches!(o.kind, OutcomeKind::Row { .. }));
                self.ledger.insert(d.id.clone(), any_row);
                Claim::Fresh
            }
            Some(false) => Claim::Reclaimed,
            Some(true) => return,
        };
        let candidates: Vec<(&Outcome, Claim)> = outcomes.iter().map(|o| (o, claim)).collect();
        let read: HashMap<EntryKey, bool> = entries_to_read(&candidates)
            .into_iter()
            .filter_map(|k| self.entries.get(&k).map(|(r, _)| (k, *r)))
            .collect();
        let plan = plan(&candidates, &read);
        for o in &plan.rows {
            let i = o.element.map_or(0, |i| i as usize);
            self.landed.push(d.logins[i]);
        }
        for (o, _) in &plan.new_entries {
            let (id, el) = o.message_id.entry(o.element);
            self.entries.entry((id.into(), el)).or_insert((false, 1));
        }
        for (key, _) in &plan.retried {
            self.entries.get_mut(key).unwrap().1 += 1;
        }
        for key in &plan.resolved {
            self.entries.get_mut(key).unwrap().0 = true;
        }
        for id in &plan.landed {
            self.ledger.insert(id.to_string(), true);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn every_login_lands_once_or_keeps_one_open_entry_and_is_forwarded_at_most_once(
        msgs in messages(),
        copies in prop::collection::vec(1usize..3, 16),
        redeliver_after_fix in any::<bool>(),
    ) {
        let originals: Vec<Delivery> = (msgs.iter().enumerate())
            .map(|(m, msg)| Delivery {
                id: format!("sqs-{m}"),
                logins: (0..msg.logins.len()).map(|l| (m, l)).collect(),
                array: msg.array,
            })
            .collect();
        let mut world = World::default();
        for (i, d) in originals.iter().enumerate() {
            for _ in 0..copies[i % copies.len()] {
                world.deliver(d, &msgs, false);
            }
        }
        // The fix ships; dead letters are redriven in copies (and new ones after them).
        let mut next = 0;
        while next < world.dead_letters.len() {
            let d = world.dead_letters[next].clone();
            for _ in 0..copies[next % copies.len()] {
                world.deliver(&d, &msgs, true);
            }
            next += 1;
        }
        if redeliver_after_fix {
            for d in &originals {
                world.deliver(d, &msgs, true);
            }
        }
        let mut landed = world.landed.clone();
        landed.sort();
        let before = landed.len();
        landed.dedup();
        prop_assert_eq!(before, landed.len(), "a login landed twice");
        for (m, msg) in msgs.iter().enumerate() {
            for (l, login) in msg.logins.iter().enumerate() {
                let id = format!("sqs-{m}");
                let own = if msg.array { l as i32 } else { -1 };
                let open = |key: &EntryKey| world.entries.get(key).is_some_and(|(r, _)| !r);
                let covered = open(&(id.clone(), own))
                    || (!world.entries.contains_key(&(id.clone(), own)) && open(&(id.clone(), -1)));
                if login.still_fails {
                    prop_assert!(!landed.contains(&(m, l)));
                    prop_assert!(covered, "a refused login has no open entry: {:?}", (m, l));
                } else {
                    prop_assert!(landed.contains(&(m, l)), "login {:?} never landed", (m, l));
                    prop_assert!(!covered, "login {:?} landed but its entry is open", (m, l));
                }
            }
        }
        for (id, n) in &world.forwarded {
            prop_assert_eq!(*n, 1, "{} forwarded {} times", id, n);
        }
    }
}
