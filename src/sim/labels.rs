//! What a simulated run's process says: its log lines (a writer for the tracing subscriber) and
//! every metric name and label value it records (a metrics recorder), for the PII check.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

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

/// The log lines written, kept in memory.
#[derive(Clone)]
pub(super) struct Logs(pub(super) Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
