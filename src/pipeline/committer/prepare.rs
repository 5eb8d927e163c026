//! A batch's messages turned into outcomes a transaction-sized group at a time, on a worker of
//! their own, so that the next group is transformed (CPU: decode, validate, mask) while this one
//! is written (PostgreSQL's time): the two overlap instead of taking turns. Suspects, messages
//! delivered more than `--max-receives` times, are not transformed here: their solo attempt is
//! recorded before they are processed at all (a message that kills its consumer must leave that
//! evidence first).

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::Item;
use crate::envelope::{Decoding, EnvelopeMode};
use crate::mask::Masker;
use crate::source::Envelope;
use crate::transform::{self, Outcome};

/// What turns messages into outcomes: cheap to clone, owned by no one task.
#[derive(Clone)]
pub(super) struct Transformer {
    pub(super) masker: Masker,
    pub(super) decoding: Decoding,
    pub(super) max_receives: u32,
}

impl Transformer {
    /// How a body is decoded: the run's flags, except for a chunk of an S3 object, which is
    /// always NDJSON of at most 1,000 logins (the chunking's own, whatever --envelope and
    /// --max-logins-per-message say: its ids depend on it).
    pub(super) fn decoding_of(&self, envelope: &Envelope) -> Decoding {
        match &envelope.chunk_of {
            None => self.decoding,
            Some(_) => Decoding {
                envelope: match self.decoding.envelope {
                    EnvelopeMode::None => EnvelopeMode::Auto,
                    mode => mode,
                },
                max_logins_per_message: self.decoding.max_logins_per_message.max(1000),
                ..self.decoding
            },
        }
    }

    /// Transform `ordinary` messages into groups of about
    /// [`LOGINS_PER_TRANSACTION`](crate::pipeline::defaults::LOGINS_PER_TRANSACTION) logins (a
    /// message never spans two), each sent as soon as it is full; stops early if the writer is
    /// gone.
    pub(super) async fn groups(&self, ordinary: Vec<Envelope>, ready: mpsc::Sender<Vec<Item>>) {
        let received_at = Utc::now();
        let (mut group, mut logins) = (Vec::new(), 0);
        for envelope in ordinary {
            let outcomes = self.transform(&envelope, received_at);
            logins += outcomes.len();
            group.push(Item::new(envelope, outcomes));
            if logins >= crate::pipeline::defaults::LOGINS_PER_TRANSACTION {
                if ready.send(std::mem::take(&mut group)).await.is_err() {
                    return;
                }
                logins = 0;
            }
        }
        if !group.is_empty() {
            let _ = ready.send(group).await;
        }
    }

    /// One message's outcomes, counted by its shape in the metrics.
    pub(super) fn transform(
        &self,
        envelope: &Envelope,
        received_at: DateTime<Utc>,
    ) -> Vec<Outcome> {
        // What of an S3 object could not be read is quarantined with its reason.
        let refusal = envelope.chunk_of.as_ref().and_then(|c| c.refusal.clone());
        if let Some(rejection) = refusal {
            return vec![transform::quarantine(
                envelope,
                &self.masker,
                rejection,
                received_at,
            )];
        }
        let decoding = self.decoding_of(envelope);
        let outcomes = transform::process_with(envelope, &self.masker, &decoding, received_at);
        if let Some(first) = outcomes.first() {
            crate::telemetry::metrics::message_shape(
                first.envelope.as_str(),
                first.compressed,
                outcomes.len(),
            );
        }
        for outcome in &outcomes {
            crate::telemetry::metrics::unknown_fields(&outcome.unknown_fields);
        }
        outcomes
    }
}
