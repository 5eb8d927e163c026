//! The unknown field names a sink has recorded in `unknown_fields` (for `status`): bounded, so
//! producers sending ever new field names cost no memory and no bytes per write once it is full.
//!
//! The table keeps at most [`MAX_RECORDED_FIELDS`] names, so a sink never needs to remember more:
//! once it has sent that many distinct names the table is full (a name is refused only when it
//! is), and it sends none again. No login depends on this: names are metadata, never a row.

use std::borrow::Borrow;
use std::collections::HashSet;

use crate::message::Outcome;

/// Most names in the `unknown_fields` table, and in a sink's memory of what it sent there.
pub(crate) const MAX_RECORDED_FIELDS: usize = 64;

/// Records names not in the table yet, no more than fill it to `$2` names.
pub(super) const RECORD_FIELDS: &str = "INSERT INTO unknown_fields (name) \
     SELECT n FROM unnest($1::text[]) AS n \
     WHERE NOT EXISTS (SELECT 1 FROM unknown_fields u WHERE u.name = n) \
     LIMIT greatest(0, $2::int8 - (SELECT count(*) FROM unknown_fields)) \
     ON CONFLICT (name) DO NOTHING";

/// The names a sink has sent to `unknown_fields`: at most [`MAX_RECORDED_FIELDS`].
#[derive(Debug, Default)]
pub(super) struct RecordedFields {
    sent: HashSet<String>,
}

impl RecordedFields {
    /// The outcomes' names this sink has not sent yet, sorted, no more than the room left.
    pub(super) fn new_names<O: Borrow<Outcome>>(&self, outcomes: &[O]) -> Vec<String> {
        let room = MAX_RECORDED_FIELDS.saturating_sub(self.sent.len());
        if room == 0 {
            return Vec::new();
        }
        let mut names: Vec<String> = outcomes
            .iter()
            .flat_map(|o| &o.borrow().unknown_fields)
            .filter(|name| *name != "other" && !self.sent.contains(*name))
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names.truncate(room);
        names
    }

    /// Remember names sent in a committed write ([`new_names`](Self::new_names) never gives more
    /// than the room left).
    pub(super) fn sent(&mut self, names: Vec<String>) {
        for name in names {
            if self.sent.len() >= MAX_RECORDED_FIELDS {
                break;
            }
            self.sent.insert(name);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.sent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{MessageId, OutcomeKind, QuarantineRecord};

    fn outcome(names: Vec<String>) -> Outcome {
        let now = chrono::Utc::now();
        Outcome {
            message_id: MessageId::from("m"),
            kind: OutcomeKind::Quarantine(QuarantineRecord {
                rejection: crate::validate::Rejection::new(
                    crate::validate::RejectCode::InvalidJson,
                    "",
                ),
                received_at: now,
                sent_at: now,
                existed_by: now,
                receive_count: 1,
                body_bytes: 0,
                body_masked: String::new(),
                user_id: None,
                user_ids: Vec::new(),
                key_id: None,
            }),
            element: None,
            envelope: crate::envelope::EnvelopeKind::None,
            compressed: false,
            unknown_fields: names,
            ends_object: false,
        }
    }

    #[test]
    fn ever_new_names_stop_at_the_bound_and_then_cost_nothing() {
        let mut recorded = RecordedFields::default();
        // 2,000 batches of 32 never-seen names each: 64,000 names, 1,000 times the bound.
        for batch in 0..2_000 {
            let names = (0..32).map(|i| format!("field_{batch}_{i}")).collect();
            let new = recorded.new_names(&[outcome(names)]);
            assert!(new.len() <= MAX_RECORDED_FIELDS - recorded.len());
            recorded.sent(new);
            assert!(recorded.len() <= MAX_RECORDED_FIELDS);
        }
        assert_eq!(recorded.len(), MAX_RECORDED_FIELDS);
        let more = outcome(vec!["yet_another".into()]);
        assert!(
            recorded.new_names(&[more]).is_empty(),
            "nothing sent when full"
        );
    }

    #[test]
    fn names_already_sent_and_other_are_not_sent_again() {
        let mut recorded = RecordedFields::default();
        let first = outcome(vec!["campaign".into(), "other".into(), "campaign".into()]);
        let new = recorded.new_names(std::slice::from_ref(&first));
        assert_eq!(new, ["campaign"]);
        recorded.sent(new);
        assert!(recorded.new_names(&[first]).is_empty());
    }
}
