//! What a login arrives wrapped in, taken off before validation: base64 of gzip (producers that
//! pay per request), an SNS notification (a topic fanned out to SQS without raw delivery), an
//! EventBridge event (a rule targeting SQS). Only these shapes are unwrapped; anything else is
//! validated as it is. The envelope's own timestamp becomes the login's `sent_at`.
//!
//! These are the producer's envelopes, inside the body; SQS's own delivery of a body (message id,
//! receipt handle) is `source::Envelope`, which never reaches this module.

use std::borrow::Cow;
use std::io::Read;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::validate::{RejectCode, Rejection};

/// Which envelopes are taken off (`--envelope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnvelopeMode {
    /// SNS notifications and EventBridge events, recognised by their shape.
    #[default]
    Auto,
    /// None: every body is one login as it arrives (nothing decompressed, unwrapped or split):
    /// the behaviour before any of these shapes were known.
    None,
    /// Only SNS notifications.
    Sns,
    /// Only EventBridge events.
    EventBridge,
}

/// What a message was wrapped in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnvelopeKind {
    /// Nothing: the body is the login.
    #[default]
    None,
    /// An SNS notification; the login is the JSON text of its `Message`.
    Sns,
    /// An EventBridge event; the login is its `detail`.
    EventBridge,
}

impl EnvelopeKind {
    /// Every kind, so each label is exported at 0 from the start.
    pub const ALL: [EnvelopeKind; 3] = [
        EnvelopeKind::None,
        EnvelopeKind::Sns,
        EnvelopeKind::EventBridge,
    ];

    /// The label used in metrics and reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvelopeKind::None => "none",
            EnvelopeKind::Sns => "sns",
            EnvelopeKind::EventBridge => "eventbridge",
        }
    }
}

/// How bodies are decoded before validation.
#[derive(Debug, Clone, Copy)]
pub struct Decoding {
    /// Which envelopes to take off.
    pub envelope: EnvelopeMode,
    /// Largest decompressed body accepted from base64+gzip (a zip bomb stops here).
    pub max_decompressed_bytes: usize,
    /// Most logins one JSON array or NDJSON body may hold ([`crate::logins`]).
    pub max_logins_per_message: usize,
    /// Keep a valid login's unknown top-level fields, scrubbed, for the `extra_fields` column.
    pub keep_extra_fields: bool,
}

impl Default for Decoding {
    fn default() -> Self {
        Self {
            envelope: EnvelopeMode::Auto,
            max_decompressed_bytes: 1 << 20,
            max_logins_per_message: 1000,
            keep_extra_fields: false,
        }
    }
}

/// A body with its wrappers taken off.
#[derive(Debug, Clone)]
pub struct Unwrapped<'a> {
    /// The login text to validate.
    pub login: Cow<'a, str>,
    /// The decompressed body (what quarantine keeps, scrubbed), or the body as received.
    pub body: Cow<'a, str>,
    /// What it was wrapped in.
    pub envelope: EnvelopeKind,
    /// Whether it arrived as base64 of gzip.
    pub compressed: bool,
    /// The envelope's timestamp (SNS `Timestamp`, EventBridge `time`), if it had one.
    pub sent_at: Option<DateTime<Utc>>,
}

/// gzip's magic bytes, base64-encoded: every base64+gzip body starts so.
const GZIP_BASE64: &str = "H4sI";

/// Whether `text` starts with gzip's magic in base64, wherever a wrapped line breaks it.
fn starts_like_gzip_base64(text: &str) -> bool {
    (text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .take(GZIP_BASE64.len()))
    .eq(GZIP_BASE64.bytes())
}

/// Take off compression, then an envelope. A failure is a rejection (never an input value).
pub fn unwrap<'a>(body: &'a str, decoding: &Decoding) -> Result<Unwrapped<'a>, Rejection> {
    let trimmed = body.trim();
    let raw = decoding.envelope == EnvelopeMode::None;
    let (text, compressed): (Cow<'a, str>, bool) = if !raw && starts_like_gzip_base64(trimmed) {
        (
            Cow::Owned(decompress(trimmed, decoding.max_decompressed_bytes)?),
            true,
        )
    } else {
        (Cow::Borrowed(body), false)
    };
    let (envelope, login, sent_at) = match envelope_of(&text, decoding.envelope) {
        Some((kind, login, sent_at)) => (kind, Cow::Owned(login), sent_at),
        None => (EnvelopeKind::None, text.clone(), None),
    };
    Ok(Unwrapped {
        login,
        body: text,
        envelope,
        compressed,
        sent_at,
    })
}

/// base64 as AWS producers and shell tools write it: the standard alphabet, padded or not,
/// wrapped at any column (GNU `base64` wraps at 76, MIME too) and with a trailing newline.
const BASE64_ANY: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// base64 of gzip → text. The whole input is consumed or the message is refused: every gzip
/// member is read (`cat a.gz b.gz`, streaming and appending compressors write several), and
/// bytes after the last member that are not another member are a refusal, never dropped.
fn decompress(text: &str, cap: usize) -> Result<String, Rejection> {
    let reject = |what: String| Rejection::new(RejectCode::InvalidJson, format!("gzip: {what}"));
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let bytes = BASE64_ANY
        .decode(&compact)
        .map_err(|_| reject("the body starts like base64 of gzip but is not base64".into()))?;
    #[cfg(feature = "sim-mutants")]
    if crate::mutants::active(crate::mutants::Mutant::LoseGzipMember) {
        let mut first = Vec::new();
        let _ = flate2::bufread::GzDecoder::new(bytes.as_slice()).read_to_end(&mut first);
        return String::from_utf8(first).map_err(|_| reject("not UTF-8".into()));
    }
    let mut out = Vec::new();
    // Read one byte past the cap: a bomb is refused without ever being inflated.
    let mut decoder = flate2::bufread::MultiGzDecoder::new(bytes.as_slice());
    (&mut decoder)
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| reject("the body is not valid gzip".into()))?;
    if out.len() > cap {
        return Err(reject(format!(
            "decompressed, the body is larger than --max-decompressed-bytes ({cap})"
        )));
    }
    if !decoder.into_inner().is_empty() {
        return Err(reject("bytes follow the last gzip member".into()));
    }
    String::from_utf8(out).map_err(|_| reject("the decompressed body is not UTF-8".into()))
}

/// The login inside an SNS notification or EventBridge event, if `text` is one (and `mode`
/// takes it off).
pub(crate) fn envelope_of(
    text: &str,
    mode: EnvelopeMode,
) -> Option<(EnvelopeKind, String, Option<DateTime<Utc>>)> {
    let maybe_sns =
        matches!(mode, EnvelopeMode::Auto | EnvelopeMode::Sns) && text.contains("\"TopicArn\"");
    let maybe_eb = matches!(mode, EnvelopeMode::Auto | EnvelopeMode::EventBridge)
        && text.contains("\"detail-type\"");
    if !maybe_sns && !maybe_eb {
        return None;
    }
    let value: Value = serde_json::from_str(text).ok()?;
    let object = value.as_object()?;
    let string = |key: &str| object.get(key).and_then(Value::as_str);
    let time = |key: &str| {
        string(key)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    if maybe_sns
        && string("Type") == Some("Notification")
        && string("TopicArn").is_some()
        && string("MessageId").is_some()
    {
        let message = string("Message")?;
        return Some((EnvelopeKind::Sns, message.to_string(), time("Timestamp")));
    }
    let is_event = ["version", "id", "detail-type", "source", "time"]
        .iter()
        .all(|k| string(k).is_some());
    if maybe_eb && is_event {
        let detail = object.get("detail").filter(|d| d.is_object())?;
        return Some((EnvelopeKind::EventBridge, detail.to_string(), time("time")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const LOGIN: &str = r#"{"user_id":"u","device_type":"ios","ip":"10.0.0.1","device_id":"d-1"}"#;

    fn gzip_base64(text: &[u8]) -> String {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(text).unwrap();
        base64::engine::general_purpose::STANDARD.encode(encoder.finish().unwrap())
    }

    #[test]
    fn sns_and_eventbridge_are_taken_off_with_their_time() {
        let sns = serde_json::json!({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:eu-west-1:1:t",
            "Message": LOGIN, "Timestamp": "2026-12-01T04:05:06.789Z"}).to_string();
        let u = unwrap(&sns, &Decoding::default()).unwrap();
        assert_eq!((u.envelope, u.login.as_ref()), (EnvelopeKind::Sns, LOGIN));
        assert_eq!(
            u.sent_at.unwrap().to_rfc3339(),
            "2026-12-01T04:05:06.789+00:00"
        );
        let event = serde_json::json!({"version": "0", "id": "e", "detail-type": "login", "source": "app",
            "time": "2026-12-01T04:05:06Z", "detail": serde_json::from_str::<Value>(LOGIN).unwrap()}).to_string();
        let u = unwrap(&event, &Decoding::default()).unwrap();
        assert_eq!(u.envelope, EnvelopeKind::EventBridge);
        assert_eq!(
            serde_json::from_str::<Value>(&u.login).unwrap(),
            serde_json::from_str::<Value>(LOGIN).unwrap()
        );
        let none = Decoding {
            envelope: EnvelopeMode::None,
            ..Decoding::default()
        };
        assert_eq!(unwrap(&sns, &none).unwrap().envelope, EnvelopeKind::None);
        let only_eb = Decoding {
            envelope: EnvelopeMode::EventBridge,
            ..Decoding::default()
        };
        assert_eq!(unwrap(&sns, &only_eb).unwrap().envelope, EnvelopeKind::None);
        // A login that merely has such a field is not an envelope.
        let plain = r#"{"user_id":"u","TopicArn":"x","device_type":"ios"}"#;
        assert_eq!(
            unwrap(plain, &Decoding::default()).unwrap().envelope,
            EnvelopeKind::None
        );
    }

    #[test]
    fn gzip_is_decoded_and_a_bomb_refused_without_inflating_it() {
        let compressed = gzip_base64(LOGIN.as_bytes());
        let u = unwrap(&compressed, &Decoding::default()).unwrap();
        assert!(u.compressed);
        assert_eq!(u.login, LOGIN);
        let bomb = gzip_base64(&vec![b' '; 64 << 20]);
        assert!(bomb.len() < 256 << 10, "{}", bomb.len());
        let err = unwrap(&bomb, &Decoding::default()).unwrap_err();
        assert!(err.message.contains("--max-decompressed-bytes"), "{err}");
        assert!(unwrap("H4sI!!!", &Decoding::default()).is_err());
    }

    #[test]
    fn what_follows_the_last_member_or_a_cut_member_is_refused_never_dropped() {
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(gzip_base64(LOGIN.as_bytes()))
            .unwrap();
        let whole = bytes.clone();
        bytes.extend_from_slice(b"trailing");
        let err = unwrap(&BASE64_ANY.encode(&bytes), &Decoding::default()).unwrap_err();
        assert!(err.message.starts_with("gzip:"), "{err}");
        for cut in [whole.len() - 1, whole.len() - 8, whole.len() / 2] {
            let truncated = BASE64_ANY.encode(&whole[..cut]);
            assert!(
                unwrap(&truncated, &Decoding::default()).is_err(),
                "cut at {cut}"
            );
        }
    }

    mod encodings {
        use super::*;
        use crate::mask::{KeyRing, Masker};
        use crate::message::{Message, MessageId};
        use proptest::prelude::*;

        fn members(text: &[u8], cuts: &[usize]) -> Vec<u8> {
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (text.len() + 1)).collect();
            points.extend([0, text.len()]);
            points.sort_unstable();
            points.dedup();
            let mut out = Vec::new();
            for pair in points.windows(2) {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(&text[pair[0]..pair[1]]).unwrap();
                out.extend(encoder.finish().unwrap());
            }
            out
        }

        /// base64 as a producer might write it: padded or not, wrapped at `column` (0: one
        /// line), with `\n` or `\r\n`, with or without a final newline.
        fn base64_as_written(
            bytes: &[u8],
            padded: bool,
            column: usize,
            crlf: bool,
            final_newline: bool,
        ) -> String {
            let mut text = base64::engine::general_purpose::STANDARD.encode(bytes);
            if !padded {
                text = text.trim_end_matches('=').to_string();
            }
            let newline = if crlf { "\r\n" } else { "\n" };
            let mut out = String::new();
            if column == 0 {
                out = text;
            } else {
                for (i, chunk) in text.as_bytes().chunks(column).enumerate() {
                    if i > 0 {
                        out.push_str(newline);
                    }
                    out.push_str(std::str::from_utf8(chunk).unwrap());
                }
            }
            if final_newline {
                out.push_str(newline);
            }
            out
        }

        fn login() -> impl Strategy<Value = String> {
            ("[a-z0-9-]{1,12}", any::<[u8; 4]>(), "[0-9]{3}-[0-9]{2}-[0-9]{4}").prop_map(|(user, ip, device)| {
                let ip = std::net::Ipv4Addr::from(ip);
                format!(r#"{{"user_id":"{user}","device_type":"ios","ip":"{ip}","device_id":"{device}"}}"#)
            })
        }

        proptest! {
            /// Rule: any list of logins, split into any number of gzip members, base64'd and
            /// wrapped any way, lands exactly the rows of the plain NDJSON.
            #[test]
            fn any_members_and_any_wrapping_land_the_rows_of_the_plain_form(
                logins in prop::collection::vec(login(), 1..20),
                cuts in prop::collection::vec(any::<usize>(), 0..6),
                padded in any::<bool>(),
                column in prop_oneof![Just(0usize), Just(76), Just(64), 1usize..200],
                crlf in any::<bool>(),
                final_newline in any::<bool>(),
            ) {
                let plain = logins.join("\n");
                let body = base64_as_written(&members(plain.as_bytes(), &cuts), padded, column, crlf, final_newline);
                let decoded = unwrap(&body, &Decoding::default()).unwrap();
                prop_assert!(decoded.compressed);
                prop_assert_eq!(decoded.body.as_ref(), plain.as_str());
                let masker = Masker::hmac(&KeyRing::parse(&"11".repeat(32)).unwrap());
                let id = MessageId::from("m");
                let at = Utc::now();
                let message = |body| Message { id: &id, body, sent_at: at, receive_count: 1, undated_copy: false };
                let plain_rows = crate::transform::process_with(message(&plain), &masker, &Decoding::default(), at);
                let packed_rows = crate::transform::process_with(message(&body), &masker, &Decoding::default(), at);
                prop_assert_eq!(plain_rows.len(), logins.len());
                for (a, b) in plain_rows.iter().zip(&packed_rows) {
                    let is_row = matches!(a.kind, crate::message::OutcomeKind::Row { .. });
                    prop_assert!(is_row, "a valid login was not a row");
                    prop_assert_eq!(&a.kind, &b.kind);
                }
            }
        }
    }
}
