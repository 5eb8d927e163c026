//! Message sets, and scanning output and tables for raw PII.

/// The bundled sample, as sent by `send-sample`.
pub(crate) fn sample_bodies() -> Vec<String> {
    login_etl::sample::SAMPLE_JSONL
        .lines()
        .map(String::from)
        .collect()
}

/// Every raw `ip` and `device_id` string value found in the bodies (the values that must never be stored).
pub(crate) fn raw_pii(bodies: &[String]) -> Vec<String> {
    let mut values = Vec::new();
    for body in bodies {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body)
        {
            for key in ["ip", "device_id"] {
                if let Some(serde_json::Value::String(s)) = map.get(key) {
                    if s.trim().len() >= 3 {
                        values.push(s.trim().to_string());
                    }
                }
            }
        }
    }
    values
}

/// Panic if any raw value appears in `haystack` (or if there is nothing to look for: a scan for
/// no values passes whatever it scans).
pub(crate) fn assert_no_raw_pii(haystack: &str, raw: &[String], what: &str) {
    assert!(!raw.is_empty(), "no raw values to look for in {what}");
    let leaked: Vec<_> = raw
        .iter()
        .filter(|v| haystack.contains(v.as_str()))
        .collect();
    assert!(
        leaked.is_empty(),
        "{} raw PII values leaked into {what}",
        leaked.len()
    );
}

/// `count` synthetic messages (1 % bad) from the project's generator.
pub(crate) fn synthetic(count: usize, seed: u64) -> Vec<String> {
    login_etl::sample::generate(&login_etl::sample::SampleSpec {
        count,
        bad_share: 0.01,
        seed,
    })
}

/// How many of `bodies` are valid logins (the rest must be quarantined).
pub(crate) fn valid_count(bodies: &[String]) -> i64 {
    bodies
        .iter()
        .filter(|b| login_etl::validate::decode(b).is_ok())
        .count() as i64
}

/// A received message as the pipeline sees it: `id`, `body`, sent `days_ago` days ago.
pub(crate) fn envelope(id: &str, body: &str, days_ago: i64) -> login_etl::source::Envelope {
    login_etl::source::Envelope {
        message_id: id.into(),
        receipt_handle: login_etl::source::ReceiptHandle("r".into()),
        body: body.to_string(),
        sent_at: chrono::Utc::now() - chrono::Duration::days(days_ago),
        receive_count: 1,
        undated_copy: false,
        chunk_of: None,
        received: std::time::Instant::now(),
    }
}
