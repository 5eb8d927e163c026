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
