//! Unit tests of the committer against a stand-in store (no database).

use super::*;
use crate::mask::KeyRing;
use crate::source::ReceiptHandle;

/// Refuses any part holding a row of user "refused", like a CHECK constraint would; counts
/// solo attempts like the `poison_attempts` table.
#[derive(Default)]
struct Refusing {
    committed: Vec<(String, &'static str)>,
    probes: usize,
    attempts: std::collections::HashMap<MessageId, u32>,
}

/// Refuses outcomes holding a row of user "refused".
fn refuse(outcomes: &[&Outcome]) -> Result<(), SinkError> {
    let refused = outcomes
        .iter()
        .any(|o| matches!(&o.kind, OutcomeKind::Row { login, .. } if login.user_id == "refused"));
    if refused {
        return Err(SinkError::Rejected {
            reason: "SQLSTATE 23514, constraint `no_refused`".into(),
        });
    }
    Ok(())
}

impl Store for Refusing {
    async fn record_solo_attempt(&mut self, id: &MessageId) -> Result<u32, SinkError> {
        let attempts = self.attempts.entry(id.clone()).or_default();
        *attempts += 1;
        Ok(*attempts)
    }

    async fn probe(&mut self, outcomes: &[&Outcome]) -> Result<(), SinkError> {
        self.probes += 1;
        refuse(outcomes)
    }

    async fn write(&mut self, outcomes: &[&Outcome], solo: bool) -> Result<WriteReport, SinkError> {
        refuse(outcomes)?;
        let mut report = WriteReport::default();
        for o in outcomes {
            let kind = match &o.kind {
                OutcomeKind::Row { .. } => {
                    report.rows += 1;
                    "row"
                }
                OutcomeKind::Quarantine(q) => {
                    report.quarantined += 1;
                    *report
                        .quarantined_by_code
                        .entry(q.rejection.code.as_str().to_string())
                        .or_default() += 1;
                    q.rejection.code.as_str()
                }
            };
            let id = match o.element {
                Some(i) => format!("{}[{i}]", o.message_id),
                None => o.message_id.to_string(),
            };
            self.committed.push((id, kind));
            if solo {
                self.attempts.remove(&o.message_id);
            }
        }
        Ok(report)
    }
}

fn envelope(id: usize, user: &str) -> Envelope {
    redelivered(id, user, 1)
}

fn redelivered(id: usize, user: &str, receive_count: u32) -> Envelope {
    Envelope {
        message_id: MessageId(format!("m{id}")),
        receipt_handle: ReceiptHandle(format!("r{id}")),
        body: format!(
            r#"{{"user_id":"{user}","device_type":"ios","ip":"10.0.0.{id}","device_id":"d-{id}"}}"#
        ),
        sent_at: Utc::now(),
        receive_count,
        undated_copy: false,
        chunk_of: None,
        received: std::time::Instant::now(),
    }
}

fn committer() -> Committer<Refusing> {
    let masker = Masker::hmac(&KeyRing::parse(&"11".repeat(32)).unwrap());
    Committer::new(
        Refusing::default(),
        masker,
        None,
        &PipelineSettings::default(),
        CancellationToken::new(),
    )
}

#[tokio::test]
async fn a_refused_row_is_isolated_and_quarantined_while_the_rest_commits() {
    let mut committer = committer();
    let batch: Vec<Envelope> = (0..9)
        .map(|i| envelope(i, if i == 3 || i == 7 { "refused" } else { "u" }))
        .collect();
    let report = committer.commit(batch).await.unwrap();
    assert_eq!((report.rows, report.quarantined), (7, 2));
    let mut committed = committer.store.committed.clone();
    committed.sort();
    assert_eq!(committed.len(), 9, "every message exactly once");
    assert!(committed.contains(&("m3".into(), "rejected_by_database")));
    assert!(committed.contains(&("m7".into(), "rejected_by_database")));
    assert!(committed.contains(&("m0".into(), "row")));
}

#[tokio::test]
async fn a_batch_without_refusals_commits_in_one_write() {
    let mut committer = committer();
    let batch: Vec<Envelope> = (0..5).map(|i| envelope(i, "u")).collect();
    let report = committer.commit(batch).await.unwrap();
    assert_eq!((report.rows, report.quarantined), (5, 0));
}

#[tokio::test]
async fn a_much_redelivered_message_lands_as_a_row_when_its_solo_attempt_finishes() {
    let mut committer = committer();
    // Delivered 9 times (its consumers kept dying), but never processed alone before.
    let batch = vec![envelope(0, "u"), redelivered(1, "u", 9), envelope(2, "u")];
    let report = committer.commit(batch).await.unwrap();
    assert_eq!((report.rows, report.quarantined), (3, 0));
    assert!(committer.store.attempts.is_empty(), "cleared on commit");
}

#[tokio::test]
async fn a_message_whose_solo_attempts_never_finished_is_quarantined_as_poison() {
    let mut committer = committer();
    let poison = MessageId("m1".into());
    // Five solo attempts were recorded and none committed: each died with its consumer.
    committer.store.attempts.insert(poison.clone(), 5);
    let batch = vec![envelope(0, "u"), redelivered(1, "u", 9)];
    let report = committer.commit(batch).await.unwrap();
    assert_eq!((report.rows, report.quarantined), (1, 1));
    assert!(committer
        .store
        .committed
        .contains(&("m1".into(), "too_many_receives")));
}

#[tokio::test]
async fn a_refused_login_of_an_array_is_isolated_while_its_siblings_commit_together() {
    let mut committer = committer();
    let login = |user: &str, i: usize| {
        format!(
            r#"{{"user_id":"{user}","device_type":"ios","ip":"10.0.1.{i}","device_id":"e-{i}"}}"#
        )
    };
    let elements: Vec<String> = (0..40)
        .map(|i| login(if i == 5 || i == 33 { "refused" } else { "u" }, i))
        .collect();
    let mut array = envelope(100, "u");
    array.body = format!("[{}]", elements.join(","));
    let batch = vec![envelope(0, "u"), array, envelope(2, "refused")];
    let report = committer.commit(batch).await.unwrap();
    assert_eq!((report.rows, report.quarantined), (1 + 38, 2 + 1));
    let committed = &committer.store.committed;
    assert_eq!(committed.len(), 1 + 40 + 1, "every login exactly once");
    assert!(
        committed.contains(&("m100[5]".into(), "rejected_by_database")),
        "{committed:?}"
    );
    assert!(committed.contains(&("m100[33]".into(), "rejected_by_database")));
    assert!(committed.contains(&("m2".into(), "rejected_by_database")));
    assert!(
        committer.store.probes < 40,
        "bisected, not tried one by one: {}",
        committer.store.probes
    );
}

/// Refusals PostgreSQL can make of rows only together, generated: the committer quarantines a
/// minimal set — every login that lands commits with the others, every quarantined one would not.
mod minimal_refusal {
    use super::*;
    use proptest::prelude::*;

    /// One monotone refusal over the user ids of a set of rows (a set holding a refused set is
    /// refused, as with constraints): a CHECK, a unique index, a trigger that counts, a triple.
    #[derive(Debug, Clone)]
    enum Clause {
        Alone(u8),
        Pair(u8, u8),
        MoreThan(u8, usize),
        Triple(u8, u8, u8),
    }

    fn clause() -> impl Strategy<Value = Clause> {
        let user = 0u8..6;
        prop_oneof![
            user.clone().prop_map(Clause::Alone),
            (user.clone(), user.clone()).prop_map(|(a, b)| Clause::Pair(a, b)),
            (user.clone(), 1usize..4).prop_map(|(a, n)| Clause::MoreThan(a, n)),
            (user.clone(), user.clone(), user).prop_map(|(a, b, c)| Clause::Triple(a, b, c)),
        ]
    }

    /// Whether the rows of users `users` are refused by any of `clauses`.
    fn refused(clauses: &[Clause], users: &[u8]) -> bool {
        let count = |u: u8| users.iter().filter(|&&x| x == u).count();
        // Distinct rows: a pair of one user needs two of its rows.
        let has = |want: &[u8]| {
            let mut need = std::collections::HashMap::new();
            for u in want {
                *need.entry(*u).or_insert(0) += 1;
            }
            need.iter().all(|(u, n)| count(*u) >= *n)
        };
        clauses.iter().any(|c| match *c {
            Clause::Alone(a) => has(&[a]),
            Clause::Pair(a, b) => has(&[a, b]),
            Clause::MoreThan(a, n) => count(a) > n,
            Clause::Triple(a, b, c) => has(&[a, b, c]),
        })
    }

    fn user_of(outcome: &Outcome) -> Option<u8> {
        match &outcome.kind {
            OutcomeKind::Row { login, .. } => login.user_id.strip_prefix('u')?.parse().ok(),
            OutcomeKind::Quarantine(_) => None,
        }
    }

    /// A table with the refusal: what it holds counts (a unique index sees committed rows).
    struct Table {
        clauses: Vec<Clause>,
        rows: Vec<u8>,
        quarantined: Vec<String>,
        probes: usize,
    }

    impl Table {
        fn check(&self, outcomes: &[&Outcome]) -> Result<(), SinkError> {
            let mut users = self.rows.clone();
            users.extend(outcomes.iter().filter_map(|o| user_of(o)));
            if refused(&self.clauses, &users) {
                return Err(SinkError::Rejected {
                    reason: "SQLSTATE 23505, constraint `generated`".into(),
                });
            }
            Ok(())
        }
    }

    impl Store for Table {
        async fn record_solo_attempt(&mut self, _: &MessageId) -> Result<u32, SinkError> {
            Ok(1)
        }

        async fn probe(&mut self, outcomes: &[&Outcome]) -> Result<(), SinkError> {
            self.probes += 1;
            self.check(outcomes)
        }

        async fn write(
            &mut self,
            outcomes: &[&Outcome],
            _: bool,
        ) -> Result<WriteReport, SinkError> {
            self.check(outcomes)?;
            for o in outcomes {
                match user_of(o) {
                    Some(user) => self.rows.push(user),
                    None => self
                        .quarantined
                        .push(format!("{}[{:?}]", o.message_id, o.element)),
                }
            }
            Ok(WriteReport::default())
        }
    }

    fn message(id: usize, users: &[u8]) -> Envelope {
        let login = |i: usize, u: u8| {
            format!(
                r#"{{"user_id":"u{u}","device_type":"ios","ip":"10.1.{id}.{i}","device_id":"d-{i}"}}"#
            )
        };
        let mut envelope = super::envelope(id, "u");
        envelope.body = match users {
            [one] => login(0, *one),
            many => format!(
                "[{}]",
                many.iter()
                    .enumerate()
                    .map(|(i, u)| login(i, *u))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        envelope
    }

    /// The reference: logins taken one by one in order, each kept unless refused with those kept.
    fn greedy(clauses: &[Clause], users: &[u8]) -> Vec<usize> {
        let (mut kept, mut out) = (Vec::new(), Vec::new());
        for (i, u) in users.iter().enumerate() {
            kept.push(*u);
            if refused(clauses, &kept) {
                kept.pop();
                out.push(i);
            }
        }
        out
    }

    fn run(clauses: Vec<Clause>, messages: &[Vec<u8>]) -> Table {
        let masker = Masker::hmac(&KeyRing::parse(&"11".repeat(32)).unwrap());
        let table = Table {
            clauses,
            rows: vec![],
            quarantined: vec![],
            probes: 0,
        };
        let mut committer: Committer<Table> = Committer::new(
            table,
            masker,
            None,
            &PipelineSettings::default(),
            CancellationToken::new(),
        );
        let batch = messages
            .iter()
            .enumerate()
            .map(|(i, users)| message(i, users))
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(committer.commit(batch)).unwrap();
        committer.store
    }

    #[test]
    fn a_pair_refused_together_quarantines_the_later_login_only() {
        // [a, a', b, c, d]: a and a' conflict (a unique index over user_id).
        let table = run(vec![Clause::Pair(0, 0)], &[vec![0, 0, 1, 2, 3]]);
        assert_eq!(table.quarantined, vec!["m0[Some(1)]".to_string()]);
        assert_eq!(table.rows, vec![0, 1, 2, 3]);
    }

    proptest! {
        #[test]
        fn quarantined_logins_are_exactly_those_the_refusal_needs(
            clauses in prop::collection::vec(clause(), 1..4),
            messages in prop::collection::vec(prop::collection::vec(0u8..6, 1..16), 1..4),
        ) {
            let table = run(clauses.clone(), &messages);
            let total: usize = messages.iter().map(Vec::len).sum();
            prop_assert_eq!(table.rows.len() + table.quarantined.len(), total, "every login once");
            prop_assert!(!refused(&clauses, &table.rows), "what landed commits together");
            if let [users] = messages.as_slice() {
                let expected: Vec<String> = greedy(&clauses, users)
                    .into_iter()
                    .map(|i| if users.len() == 1 { "m0[None]".into() } else { format!("m0[Some({i})]") })
                    .collect();
                prop_assert_eq!(&table.quarantined, &expected);
                let bound = refused::probe_bound(users.len(), expected.len());
                prop_assert!(table.probes <= bound, "{} probes, bound {}", table.probes, bound);
            }
            // Minimal: no quarantined login would have committed with what landed.
            for (i, users) in messages.iter().enumerate() {
                for (j, user) in users.iter().enumerate() {
                    let id = if users.len() == 1 { format!("m{i}[None]") } else { format!("m{i}[Some({j})]") };
                    if table.quarantined.contains(&id) {
                        let mut with = table.rows.clone();
                        with.push(*user);
                        prop_assert!(refused(&clauses, &with), "{} was quarantined but commits with the rest", id);
                    }
                }
            }
        }
    }
}
