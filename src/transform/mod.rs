//! The pure middle of the pipeline: one received message in, one [`Outcome`] out.
//!
//! Decoding ([`crate::validate`]) and masking ([`crate::mask`]) meet here; what leaves this module holds
//! no raw `ip` or `device_id`, whichever way the message went.

use chrono::{DateTime, Utc};

use crate::envelope::{self, Decoding, EnvelopeKind, EnvelopeMode, Unwrapped};
use crate::logins::{self, Logins};
use crate::mask::Masker;
use crate::message::Message;
pub use crate::message::{Outcome, OutcomeKind, QuarantineRecord};
use crate::validate::{self, RejectCode, Rejection};

/// Decide what a message becomes: masked rows, or quarantine entries with the reason, with the
/// default decoding (envelopes recognised, base64+gzip up to 1 MiB, up to 1,000 logins a body).
pub fn process<'a>(
    message: impl Into<Message<'a>>,
    masker: &Masker,
    received_at: DateTime<Utc>,
) -> Vec<Outcome> {
    process_with(message, masker, &Decoding::default(), received_at)
}

/// [`process`] with the run's decoding flags: wrappers come off first ([`crate::envelope`]), a
/// JSON array or NDJSON body is split into its logins ([`crate::logins`]), then each login is
/// validated and masked. One outcome per login, all with the message's id; a refused login's
/// reason names its envelope and element, and quarantine keeps its own text, scrubbed.
pub fn process_with<'a>(
    message: impl Into<Message<'a>>,
    masker: &Masker,
    decoding: &Decoding,
    received_at: DateTime<Utc>,
) -> Vec<Outcome> {
    let message = message.into();
    let unwrapped = match envelope::unwrap(message.body, decoding) {
        Ok(unwrapped) => unwrapped,
        Err(rejection) => return vec![quarantine(message, masker, rejection, received_at)],
    };
    let context = Context {
        message,
        unwrapped: &unwrapped,
        masker,
        keep_extra_fields: decoding.keep_extra_fields,
        received_at,
        envelope_mode: decoding.envelope,
    };
    let outcomes = match split(&unwrapped, decoding) {
        Err(rejection) => vec![context.refuse(&unwrapped.body, None, rejection)],
        Ok(Logins::One) => vec![context.login(&unwrapped.login, &unwrapped.body, None)],
        Ok(Logins::Many(elements)) => {
            let count = elements.len();
            let element = |i: usize| Some(Element { index: i, count });
            (elements.iter().enumerate())
                .map(|(i, text)| context.login(text, text, element(i)))
                .collect()
        }
    };
    outcomes
        .into_iter()
        .map(|mut outcome| {
            outcome.envelope = unwrapped.envelope;
            outcome.compressed = unwrapped.compressed;
            outcome
        })
        .collect()
}

/// The quarantine outcome of element `index` of a message that PostgreSQL refused, the element's
/// own text scrubbed; `None` if the message holds no such element.
pub(crate) fn refuse_element<'a>(
    message: impl Into<Message<'a>>,
    masker: &Masker,
    decoding: &Decoding,
    index: u32,
    rejection: Rejection,
) -> Option<Outcome> {
    let message = message.into();
    let unwrapped = envelope::unwrap(message.body, decoding).ok()?;
    let Ok(Logins::Many(elements)) = split(&unwrapped, decoding) else {
        return None;
    };
    let text = elements.get(index as usize)?;
    let context = Context {
        message,
        unwrapped: &unwrapped,
        masker,
        keep_extra_fields: false,
        received_at: Utc::now(),
        envelope_mode: decoding.envelope,
    };
    let element = Element {
        index: index as usize,
        count: elements.len(),
    };
    let mut outcome = context.refuse(text, Some(element), rejection);
    outcome.envelope = unwrapped.envelope;
    outcome.compressed = unwrapped.compressed;
    Some(outcome)
}

/// The raw text of element `index` of a message (for the dead-letter queue), if it has one.
pub(crate) fn element_text(body: &str, decoding: &Decoding, index: u32) -> Option<String> {
    let unwrapped = envelope::unwrap(body, decoding).ok()?;
    match split(&unwrapped, decoding) {
        Ok(Logins::Many(elements)) => elements.get(index as usize).map(|t| t.to_string()),
        _ => None,
    }
}

fn split<'u>(unwrapped: &'u Unwrapped<'_>, decoding: &Decoding) -> Result<Logins<'u>, Rejection> {
    if decoding.envelope == EnvelopeMode::None {
        return Ok(Logins::One);
    }
    logins::split(&unwrapped.login, decoding.max_logins_per_message)
}

/// Where a login sits in a body of several.
#[derive(Clone, Copy)]
struct Element {
    index: usize,
    count: usize,
}

/// What every outcome of one message shares.
struct Context<'c, 'a> {
    message: Message<'a>,
    unwrapped: &'c Unwrapped<'a>,
    masker: &'c Masker,
    keep_extra_fields: bool,
    received_at: DateTime<Utc>,
    /// Which envelopes are recognised (for the elements' own too).
    envelope_mode: EnvelopeMode,
}

/// How far an envelope's time may run ahead of its message's (producers' clocks differ).
const ENVELOPE_TIME_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// The earliest envelope time taken as a login's: history loaded from archives is old, but none
/// is older than this; an earlier one (year 0, a zeroed clock) is a mistake, and the message's
/// own time is taken instead (a `create_date` in 1 BC would be kept by nothing and erased by
/// everything).
const EARLIEST_TIME: DateTime<Utc> = DateTime::from_timestamp_nanos(946_684_800_000_000_000);

impl Context<'_, '_> {
    /// When the login was sent: the event's own time (its envelope's `Timestamp`/`time`) when it
    /// has one, so a replayed archive or a redrive keeps its dates; else when the message was
    /// sent. The envelope's time is the producer's word: one later than the message itself
    /// (beyond clock skew) cannot be true, and would date rows into months that have no partition
    /// yet or outlive every retention; the message's time is taken then.
    fn sent_at(&self) -> DateTime<Utc> {
        self.dated(self.unwrapped.sent_at)
    }

    /// An envelope's time, if it can be true; else the message's.
    fn dated(&self, envelope_time: Option<DateTime<Utc>>) -> DateTime<Utc> {
        match envelope_time {
            Some(at) if at <= self.message.sent_at + ENVELOPE_TIME_SKEW && at >= EARLIEST_TIME => {
                at
            }
            _ => self.message.sent_at,
        }
    }

    /// One login's outcome; `body` is what quarantine keeps (scrubbed) if it is refused.
    fn login(&self, text: &str, body: &str, element: Option<Element>) -> Outcome {
        // An element of a body with no envelope may come in its own (an EventBridge archive
        // exported as NDJSON, an array of SNS notifications): its login is what is validated, and
        // its time dates it.
        let own = match (element, self.unwrapped.envelope) {
            (Some(_), EnvelopeKind::None) => envelope::envelope_of(text, self.envelope_mode),
            _ => None,
        };
        let (text, sent_at) = match &own {
            Some((_, login, at)) => (login.as_str(), self.dated(*at)),
            None => (text, self.sent_at()),
        };
        match validate::decode(text) {
            Ok(mut event) => {
                let keep = self.keep_extra_fields && !event.unknown_fields.is_empty();
                let extra_fields = keep.then(|| self.masker.extra_fields(text)).flatten();
                let unknown_fields = unknown_field_labels(&mut event);
                let row = self.masker.mask_row(event, sent_at);
                Outcome {
                    message_id: self.message.id.clone(),
                    element: element.map(|e| e.index as u32),
                    kind: OutcomeKind::Row {
                        login: row.login,
                        create_date: row.create_date,
                        sent_at,
                        existed_by: self.message.existed_by(),
                        extra_fields,
                    },
                    unknown_fields,
                    envelope: EnvelopeKind::None,
                    compressed: false,
                    ends_object: false,
                }
            }
            Err(rejection) => self.refuse(body, element, rejection),
        }
    }

    /// A quarantine outcome whose reason names the envelope and the element.
    fn refuse(&self, body: &str, element: Option<Element>, mut rejection: Rejection) -> Outcome {
        let mut prefix = String::new();
        if self.unwrapped.envelope != EnvelopeKind::None {
            prefix = format!("{} envelope: ", self.unwrapped.envelope.as_str());
        }
        if let Some(Element { index, count }) = element {
            prefix.push_str(&format!("element [{index}] of {count}: "));
        }
        if !prefix.is_empty() {
            rejection.message = format!("{prefix}{}: {}", rejection.code, rejection.message);
        }
        let body = Message {
            body,
            sent_at: self.sent_at(),
            ..self.message
        };
        let mut outcome = quarantine(body, self.masker, rejection, self.received_at);
        outcome.element = element.map(|e| e.index as u32);
        // The envelope's time may run ahead: the queue's word is the message's own.
        if let OutcomeKind::Quarantine(record) = &mut outcome.kind {
            record.existed_by = self.message.existed_by();
        }
        outcome
    }
}

/// The outcome of a poison message: one that was processed alone `solo_attempts` times, more
/// than `max_receives`, and never finished (each attempt died with its consumer or failed).
pub(crate) fn poison<'a>(
    message: impl Into<Message<'a>>,
    masker: &Masker,
    solo_attempts: u32,
    max_receives: u32,
    received_at: DateTime<Utc>,
) -> Outcome {
    let message = message.into();
    let rejection = Rejection::new(
        RejectCode::TooManyReceives,
        format!(
            "processed alone {} times without finishing, more than --max-receives {max_receives} \
             (received {} times in all)",
            solo_attempts - 1,
            message.receive_count
        ),
    );
    quarantine(message, masker, rejection, received_at)
}

/// The quarantine outcome of a message, for a rejection found here or later (by the database).
pub fn quarantine<'a>(
    message: impl Into<Message<'a>>,
    masker: &Masker,
    rejection: Rejection,
    received_at: DateTime<Utc>,
) -> Outcome {
    let message = message.into();
    let scrubbed = masker.scrub_body(message.body);
    Outcome {
        message_id: message.id.clone(),
        kind: OutcomeKind::Quarantine(QuarantineRecord {
            rejection,
            received_at,
            sent_at: message.sent_at,
            existed_by: message.existed_by(),
            receive_count: message.receive_count,
            body_bytes: message.body.len(),
            body_masked: scrubbed.json,
            user_id: scrubbed.user_id,
            user_ids: scrubbed.user_ids,
            key_id: masker.key_id().map(String::from),
        }),
        element: None,
        envelope: EnvelopeKind::None,
        compressed: false,
        unknown_fields: Vec::new(),
        ends_object: false,
    }
}

/// The unknown field names of a valid login as metric labels: a name that could be a value (not
/// plain, or equal to the login's own device id) is `other`.
fn unknown_field_labels(event: &mut crate::validate::LoginEvent) -> Vec<String> {
    let device = event.device_id.to_lowercase();
    std::mem::take(&mut event.unknown_fields)
        .into_iter()
        .map(|name| {
            if crate::mask::is_plain_name(&name) && name.to_lowercase() != device {
                name
            } else {
                "other".to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
