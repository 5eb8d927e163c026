//! The metric names (Prometheus conventions: `login_etl_` prefix, `_total` counters, base units)
//! and the few functions that record them.

use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub(crate) const RECEIVED: &str = "login_etl_messages_received_total";
pub(crate) const ROWS: &str = "login_etl_rows_written_total";
pub(crate) const QUARANTINED: &str = "login_etl_quarantined_total";
pub(crate) const DUPLICATES: &str = "login_etl_duplicates_skipped_total";
pub(crate) const ERASED: &str = "login_etl_erased_logins_left_out_total";
pub(crate) const DELETED: &str = "login_etl_deletes_total";
pub(crate) const DELETE_FAILURES: &str = "login_etl_delete_failures_total";
pub(crate) const DEAD_LETTERS: &str = "login_etl_dead_letters_forwarded_total";
pub(crate) const MESSAGES_BY_ENVELOPE: &str = "login_etl_messages_by_envelope_total";
pub(crate) const UNKNOWN_FIELDS: &str = "login_etl_unknown_fields_total";
pub(crate) const DECOMPRESSED: &str = "login_etl_decompressed_messages_total";
pub(crate) const LOGINS_PER_MESSAGE: &str = "login_etl_logins_per_message";
pub(crate) const DEAD_LETTERS_NOT_FORWARDED: &str = "login_etl_dead_letters_not_forwarded_total";
pub(crate) const RETRIES: &str = "login_etl_retries_total";
pub(crate) const BATCHES: &str = "login_etl_batches_committed_total";
pub(crate) const BATCH_SIZE: &str = "login_etl_batch_size_messages";
pub(crate) const COMMIT_SECONDS: &str = "login_etl_commit_duration_seconds";
pub(crate) const LATENCY_SECONDS: &str = "login_etl_end_to_end_latency_seconds";
pub(crate) const QUEUE_VISIBLE: &str = "login_etl_queue_visible_messages";
pub(crate) const QUEUE_IN_FLIGHT: &str = "login_etl_queue_in_flight_messages";
pub(crate) const HELD: &str = "login_etl_messages_held";
pub(crate) const LAST_COMMIT: &str = "login_etl_last_commit_timestamp_seconds";
pub(crate) const READY: &str = "login_etl_ready";
pub(crate) const START_TIME: &str = "login_etl_start_time_seconds";
pub(crate) const LAST_UPKEEP: &str = "login_etl_ledger_pruning_last_run_timestamp_seconds";
pub(crate) const BUILD_INFO: &str = "login_etl_build_info";
pub(crate) const LEDGER_PRUNED: &str = "login_etl_ledger_pruned_total";

/// The label values known before anything happens (telemetry knows no pipeline type: the
/// caller names them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Known<'a> {
    /// `kind` of `login_etl_retries_total`.
    pub(crate) retry_kinds: &'a [&'static str],
    /// `reason` of `login_etl_quarantined_total`.
    pub(crate) reasons: &'a [&'static str],
    /// `envelope` of `login_etl_messages_by_envelope_total`.
    pub(crate) envelopes: &'a [&'static str],
}

/// Install the process-wide Prometheus recorder; its handle renders `/metrics`. Every counter
/// and labelled series known in advance is exported at 0 from here on, so a dashboard shows 0
/// rather than "No data" and `increase()` sees the first event.
pub(crate) fn install(
    strategy: &str,
    key_id: &str,
    known: Known<'_>,
) -> anyhow::Result<PrometheusHandle> {
    let seconds = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    ];
    let sizes = [
        1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), &sizes)?
        .set_buckets_for_metric(Matcher::Full(LOGINS_PER_MESSAGE.into()), &sizes)?
        .set_buckets_for_metric(Matcher::Full(COMMIT_SECONDS.into()), &seconds)?
        .set_buckets_for_metric(Matcher::Full(LATENCY_SECONDS.into()), &seconds)?
        .install_recorder()?;
    describe();
    at_zero(known);
    gauge!(START_TIME).set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => env!("LOGIN_ETL_GIT_COMMIT"), "strategy" => strategy.to_string(), "key_id" => key_id.to_string()).set(1.0);
    Ok(handle)
}

/// Every counter, labelled series and histogram known in advance, at 0. The two timestamps are
/// 0 until their event ("never"; the alerts fall back to the start time); the queue gauges come
/// with the first probe.
fn at_zero(known: Known<'_>) {
    for name in [
        RECEIVED,
        ROWS,
        DUPLICATES,
        ERASED,
        DELETED,
        DELETE_FAILURES,
        DEAD_LETTERS,
        DECOMPRESSED,
        DEAD_LETTERS_NOT_FORWARDED,
        BATCHES,
        LEDGER_PRUNED,
    ] {
        counter!(name).absolute(0);
    }
    for &kind in known.retry_kinds {
        counter!(RETRIES, "kind" => kind).absolute(0);
    }
    for &reason in known.reasons {
        counter!(QUARANTINED, "reason" => reason).absolute(0);
    }
    for &envelope in known.envelopes {
        counter!(MESSAGES_BY_ENVELOPE, "envelope" => envelope).absolute(0);
    }
    counter!(UNKNOWN_FIELDS, "field" => "other").absolute(0);
    for name in [
        BATCH_SIZE,
        LOGINS_PER_MESSAGE,
        COMMIT_SECONDS,
        LATENCY_SECONDS,
    ] {
        drop(histogram!(name));
    }
    for name in [HELD, READY, LAST_COMMIT, LAST_UPKEEP] {
        gauge!(name).set(0.0);
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        RECEIVED,
        "Messages received from SQS (redeliveries included)."
    );
    describe_counter!(ROWS, "Rows committed to user_logins.");
    describe_counter!(
        QUARANTINED,
        "Entries committed to quarantined_messages, by reason code."
    );
    describe_counter!(
        DUPLICATES,
        "Redeliveries skipped because their id was already committed."
    );
    describe_counter!(
        ERASED,
        "Logins not written because their user was erased after they were sent."
    );
    describe_counter!(DELETED, "Committed messages deleted from SQS.");
    describe_counter!(
        DELETE_FAILURES,
        "Committed messages SQS did not delete (redelivered, then skipped)."
    );
    describe_counter!(
        DEAD_LETTERS,
        "Quarantined messages forwarded to the dead-letter queue."
    );
    describe_counter!(
        MESSAGES_BY_ENVELOPE,
        "Messages by what the login came wrapped in: none, sns, eventbridge."
    );
    describe_counter!(
        UNKNOWN_FIELDS,
        "Top-level fields of valid logins nobody asked for, by name (the first 32 names seen, then other)."
    );
    describe_counter!(
        DECOMPRESSED,
        "Messages that arrived as base64 of gzip and were decompressed."
    );
    describe_histogram!(
        LOGINS_PER_MESSAGE,
        "Logins per message: 1 for a body of one, the element count of a JSON array or NDJSON."
    );
    describe_counter!(
        DEAD_LETTERS_NOT_FORWARDED,
        "Quarantined messages that could not be forwarded (too large, refused by SQS); they stay in quarantine."
    );
    describe_counter!(RETRIES, "Retries after a transient failure, by kind.");
    describe_counter!(BATCHES, "Batches committed.");
    describe_counter!(
        LEDGER_PRUNED,
        "Ledger ids pruned past --ledger-retention-days."
    );
    describe_histogram!(BATCH_SIZE, Unit::Count, "Messages per committed batch.");
    describe_histogram!(
        COMMIT_SECONDS,
        Unit::Seconds,
        "Time to transform and commit a batch."
    );
    describe_histogram!(
        LATENCY_SECONDS,
        Unit::Seconds,
        "From a message's SentTimestamp to the commit of its batch."
    );
    describe_gauge!(
        QUEUE_VISIBLE,
        "ApproximateNumberOfMessages, by queue (source, dead_letter)."
    );
    describe_gauge!(
        QUEUE_IN_FLIGHT,
        "ApproximateNumberOfMessagesNotVisible, by queue."
    );
    describe_gauge!(
        HELD,
        "Messages received and not yet acknowledged by this process."
    );
    describe_gauge!(LAST_COMMIT, "Unix time of the last committed batch.");
    describe_gauge!(
        READY,
        "1 while SQS and PostgreSQL answered the last probe (/readyz is 200), else 0."
    );
    describe_gauge!(
        START_TIME,
        "Unix time this process started: it changes when a consumer restarts."
    );
    describe_gauge!(
        LAST_UPKEEP,
        "Unix time the background ledger pruning last ran to completion."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; labels: version, git commit, masking strategy, active key id."
    );
}

pub(crate) fn received(messages: usize) {
    counter!(RECEIVED).increment(messages as u64);
    gauge!(HELD).increment(messages as f64);
}

/// A committed batch: sizes, reasons, timing, and per-message latency from `sent`.
pub(crate) fn committed(
    batch: Committed<'_>,
    took: Duration,
    sent: impl Iterator<Item = chrono::DateTime<chrono::Utc>>,
) {
    counter!(BATCHES).increment(1);
    counter!(ROWS).increment(batch.rows);
    counter!(DUPLICATES).increment(batch.duplicates);
    counter!(ERASED).increment(batch.erased);
    for (code, n) in batch.quarantined_by_code {
        counter!(QUARANTINED, "reason" => code.clone()).increment(*n);
    }
    let messages = batch.messages;
    histogram!(BATCH_SIZE).record(messages as f64);
    histogram!(COMMIT_SECONDS).record(took.as_secs_f64());
    let now = chrono::Utc::now();
    let latency = histogram!(LATENCY_SECONDS);
    for sent_at in sent {
        latency.record((now - sent_at).num_milliseconds().max(0) as f64 / 1000.0);
    }
    gauge!(LAST_COMMIT).set(now.timestamp_millis() as f64 / 1000.0);
}

/// Messages this process let go of (acknowledged, or left for redelivery).
pub(crate) fn released(messages: usize) {
    gauge!(HELD).decrement(messages as f64);
}

pub(crate) fn deleted(deleted: u64, failed: u64) {
    counter!(DELETED).increment(deleted);
    counter!(DELETE_FAILURES).increment(failed);
}

pub(crate) fn ledger_pruned(ids: u64) {
    counter!(LEDGER_PRUNED).increment(ids);
}

pub(crate) fn dead_letters(forwarded: usize) {
    counter!(DEAD_LETTERS).increment(forwarded as u64);
}

/// One message's shape: what it was wrapped in (`none`, `sns`, `eventbridge`), and whether it
/// arrived as base64 of gzip.
pub(crate) fn message_shape(envelope: &'static str, compressed: bool, logins: usize) {
    counter!(MESSAGES_BY_ENVELOPE, "envelope" => envelope).increment(1);
    histogram!(LOGINS_PER_MESSAGE).record(logins as f64);
    if compressed {
        counter!(DECOMPRESSED).increment(1);
    }
}

/// Distinct field names used as labels, at most [`MAX_FIELD_LABELS`]; later ones count as `other`.
static FIELD_LABELS: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());
/// The label set of the unknown-field counter is bounded: the first names seen, then `other`.
const MAX_FIELD_LABELS: usize = 32;

/// Unknown top-level fields of valid logins, by name (already vetted as names, not values).
pub(crate) fn unknown_fields(names: &[String]) {
    if names.is_empty() {
        return;
    }
    let mut seen = FIELD_LABELS.lock().unwrap_or_else(|e| e.into_inner());
    for name in names {
        let label = if seen.contains(name)
            || (seen.len() < MAX_FIELD_LABELS && seen.insert(name.clone()))
        {
            name.clone()
        } else {
            "other".to_string()
        };
        counter!(UNKNOWN_FIELDS, "field" => label).increment(1);
    }
}

/// Whether the last probe found SQS and PostgreSQL answering.
pub(crate) fn ready(ready: bool) {
    gauge!(READY).set(if ready { 1.0 } else { 0.0 });
}

/// The ledger pruning round just completed.
pub(crate) fn ledger_pruning_ran() {
    gauge!(LAST_UPKEEP).set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
}

/// Quarantined messages that could not be forwarded (too large, refused): they stay in quarantine.
pub(crate) fn dead_letters_not_forwarded(messages: usize) {
    counter!(DEAD_LETTERS_NOT_FORWARDED).increment(messages as u64);
}

pub(crate) fn retry(kind: &'static str) {
    counter!(RETRIES, "kind" => kind).increment(1);
}

/// A queue's depth: visible and in-flight messages (`queue` is `source` or `dead_letter`).
pub(crate) fn queue_depth(queue: &'static str, visible: u64, in_flight: u64) {
    gauge!(QUEUE_VISIBLE, "queue" => queue).set(visible as f64);
    gauge!(QUEUE_IN_FLIGHT, "queue" => queue).set(in_flight as f64);
}

/// What a committed batch did, in plain numbers (telemetry knows no pipeline or sink type).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Committed<'a> {
    /// Messages in the batch.
    pub(crate) messages: usize,
    /// Rows written.
    pub(crate) rows: u64,
    /// Redeliveries skipped.
    pub(crate) duplicates: u64,
    /// Logins left out: their user was erased after they were sent.
    pub(crate) erased: u64,
    /// Quarantine entries by reason code.
    pub(crate) quarantined_by_code: &'a std::collections::BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_label_set_stays_at_its_bound_whatever_names_come() {
        for batch in 0..100 {
            let names: Vec<String> = (0..50).map(|i| format!("name_{batch}_{i}")).collect();
            unknown_fields(&names);
            let seen = FIELD_LABELS.lock().unwrap_or_else(|e| e.into_inner());
            assert!(seen.len() <= MAX_FIELD_LABELS);
        }
        let seen = FIELD_LABELS.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(seen.len(), MAX_FIELD_LABELS, "full, and no further");
    }
}
