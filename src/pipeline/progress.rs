//! What a running consumer says about its progress, at a rate that stays readable under load: at
//! most one info line per interval summing up the batches committed since the last one (each
//! batch at debug), or, for `run --drain` on a terminal, a progress bar instead.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::sink::WriteReport;

/// How often the summary line is written while batches commit.
const EVERY: Duration = Duration::from_secs(10);

pub(super) struct Progress {
    bar: Option<ProgressBar>,
    since: Instant,
    batches: u64,
    window: WriteReport,
    messages: usize,
}

impl Progress {
    /// `bar_total`: show a bar sized by this estimate of the queue's depth (a terminal is
    /// attached and the run drains); `None`: periodic log lines.
    pub(super) fn new(bar_total: Option<u64>) -> Self {
        let bar = bar_total.map(|total| {
            let bar = ProgressBar::new(total.max(1));
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} messages, {per_sec}, eta {eta}  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Self {
            bar,
            since: Instant::now(),
            batches: 0,
            window: WriteReport::default(),
            messages: 0,
        }
    }

    pub(super) fn committed(&mut self, report: &WriteReport, messages: usize) {
        tracing::debug!(
            messages,
            rows = report.rows,
            quarantined = report.quarantined,
            duplicates = report.duplicates,
            "batch committed"
        );
        self.batches += 1;
        self.messages += messages;
        self.window += report.clone();
        if let Some(bar) = &self.bar {
            if bar.position() + messages as u64 > bar.length().unwrap_or(0) {
                bar.set_length(bar.position() + messages as u64);
            }
            bar.inc(messages as u64);
            bar.set_message(format!(
                "written {}, quarantined {}",
                self.window.rows, self.window.quarantined
            ));
            return;
        }
        let elapsed = self.since.elapsed();
        if elapsed >= EVERY {
            tracing::info!(
                batches = self.batches,
                messages = self.messages,
                rows = self.window.rows,
                quarantined = self.window.quarantined,
                duplicates = self.window.duplicates,
                messages_per_second = (self.messages as f64 / elapsed.as_secs_f64()).round(),
                "committed in the last {:.0}s",
                elapsed.as_secs_f64()
            );
            *self = Self::new(None);
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
