//! A metrics recorder for one simulated run that keeps every metric name and label value the
//! pipeline records, so the PII check covers metric labels as well as stored data and log lines.

use std::collections::BTreeSet;
use std::sync::Mutex;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

#[derive(Default)]
pub(super) struct Labels(Mutex<BTreeSet<String>>);

impl Labels {
    fn keep(&self, key: &Key) {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for label in key.labels() {
            seen.insert(format!(
                "{}{{{}={}}}",
                key.name(),
                label.key(),
                label.value()
            ));
        }
    }

    /// Every `name{label=value}` recorded, one a line.
    pub(super) fn text(&self) -> String {
        let seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Recorder for Labels {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.keep(key);
        Counter::noop()
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.keep(key);
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.keep(key);
        Histogram::noop()
    }
}
