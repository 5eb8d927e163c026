//! Review findings against `refused/mod.rs`: event orders and refusals the minimal-set search and
//! the schema stop get wrong. Each test states the rule it wants; they fail on the code as is.

use super::super::*;
use crate::mask::KeyRing;
use crate::source::ReceiptHandle;

fn login(i: usize, user: &str) -> String {
    format!(r#"{{"user_id":"{user}","device_type":"ios","ip":"10.2.0.{i}","device_id":"d-{i}"}}"#)
}

fn message(id: usize, users: &[&str]) -> Envelope {
    let body = match users {
        [one] => login(0, one),
        many => format!(
            "[{}]",
            (many.iter().enumerate())
                .map(|(i, u)| login(i, u))
                .collect::<Vec<_>>()
                .join(",")
        ),
    };
    Envelope {
        message_id: MessageId(format!("m{id}")),
        receipt_handle: ReceiptHandle(format!("r{id}")),
        body,
        sent_at: Utc::now(),
        receive_count: 1,
        undated_copy: false,
        chunk_of: None,
        received: std::time::Instant::now(),
    }
}

fn user(o: &Outcome) -> Option<&str> {
    match &o.kind {
        OutcomeKind::Row { login, .. } => Some(&login.user_id),
        OutcomeKind::Quarantine(_) => None,
    }
}

/// `user_logins` with a unique index over `user_id` (the module docs' own example) and another
/// consumer that commits a login of user `race` right after this one's first passing probe that
/// holds such a login (two replicas, a user logging in twice).
#[derive(Default)]
struct UniqueUsers {
    committed: Vec<String>,
    quarantined: Vec<Option<u32>>,
    race: Option<&'static str>,
}

impl UniqueUsers {
    fn check(&self, outcomes: &[&Outcome]) -> Result<(), SinkError> {
        let mut seen: std::collections::HashSet<&str> =
            self.committed.iter().map(String::as_str).collect();
        for user in outcomes.iter().filter_map(|o| user(o)) {
            if !seen.insert(user) {
                return Err(SinkError::Rejected {
                    reason: "SQLSTATE 23505, constraint `one_login_per_user`".into(),
                });
            }
        }
        Ok(())
    }
}

impl Store for UniqueUsers {
    async fn write(&mut self, outcomes: &[&Outcome], _: bool) -> Result<WriteReport, SinkError> {
        self.check(outcomes)?;
        for o in outcomes {
            match user(o) {
                Some(u) => self.committed.push(u.to_string()),
                None => self.quarantined.push(o.element),
            }
        }
        Ok(WriteReport::default())
    }

    async fn probe(&mut self, outcomes: &[&Outcome]) -> Result<(), SinkError> {
        let result = self.check(outcomes);
        if let Some(race) = self.race {
            if result.is_ok() && outcomes.iter().any(|o| user(o) == Some(race)) {
                self.committed.push(race.to_string());
                self.race = None;
            }
        }
        result
    }

    async fn record_solo_attempt(&mut self, _: &MessageId) -> Result<u32, SinkError> {
        Ok(1)
    }
}

fn committer<S: Store>(store: S) -> Committer<S> {
    let masker = Masker::hmac(&KeyRing::parse(&"11".repeat(32)).unwrap());
    Committer::new(
        store,
        masker,
        None,
        &PipelineSettings::default(),
        CancellationToken::new(),
    )
}

/// Rule: no quarantined login would commit with the logins that land, whatever commits
/// concurrently between probes. Here `[a, y, a', d, e]`: `a'` conflicts with `a`; another
/// consumer commits `y` once `[a, y]` was probed. The search keeps `[a, y]` as "known to
/// commit", so `d` and `e`, refused only because `y` now conflicts, are quarantined although
/// they conflict with nothing (and `y` is found on the next round). The final kept set is never
/// re-probed when the last login is the one refused. Fix: when `kept` + the first login is
/// refused, probe `kept` alone; if it is refused now, start the search again (bounded).
#[tokio::test]
async fn a_commit_between_probes_does_not_quarantine_innocent_logins() {
    let store = UniqueUsers {
        race: Some("y"),
        ..UniqueUsers::default()
    };
    let mut committer = committer(store);
    let batch = vec![message(0, &["a", "y", "a", "d", "e"])];
    committer.commit(batch).await.unwrap();
    let store = &committer.store;
    assert!(
        store.committed.iter().any(|u| u == "d") && store.committed.iter().any(|u| u == "e"),
        "innocent logins were quarantined: committed {:?}, quarantined elements {:?}",
        store.committed,
        store.quarantined
    );
}

/// A table a DBA changed after start-up: a column added `NOT NULL` without a default (or one
/// login-etl writes NULL into made `NOT NULL`). Every login is refused alone with the same
/// 23502; the schema stop looks only at class 22, so every login of every message is
/// quarantined one by one (raw ip/device_id gone: not replayable), with 2 probes per login.
/// Rule wanted: a not-null refusal that every sampled login meets alone stops the run
/// (`SinkError::Schema`), as a class-22 one does; `check_columns` could also name NOT NULL
/// columns without a default that the writer does not fill.
#[derive(Default)]
struct NotNullColumn {
    probes: usize,
    written: usize,
}

impl Store for NotNullColumn {
    async fn write(&mut self, outcomes: &[&Outcome], _: bool) -> Result<WriteReport, SinkError> {
        self.probe(outcomes).await?;
        self.written += outcomes.len();
        Ok(WriteReport::default())
    }

    async fn probe(&mut self, outcomes: &[&Outcome]) -> Result<(), SinkError> {
        self.probes += 1;
        if outcomes.iter().any(|o| user(o).is_some()) {
            return Err(SinkError::Rejected {
                reason: "SQLSTATE 23502, column `tenant`, table `user_logins`".into(),
            });
        }
        Ok(())
    }

    async fn record_solo_attempt(&mut self, _: &MessageId) -> Result<u32, SinkError> {
        Ok(1)
    }
}

#[tokio::test]
async fn a_not_null_column_every_login_is_refused_by_stops_the_run() {
    let mut committer = committer(NotNullColumn::default());
    let users: Vec<String> = (0..50).map(|i| format!("u{i}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let batch = vec![message(0, &users), message(1, &["v"]), message(2, &["w"])];
    let result = committer.commit(batch).await;
    assert!(
        matches!(result, Err(PipelineError::Sink(SinkError::Schema(_)))),
        "every login was quarantined instead ({} probes, {} outcomes written): {:?}",
        committer.store.probes,
        committer.store.written,
        result.map(|_| ())
    );
}
