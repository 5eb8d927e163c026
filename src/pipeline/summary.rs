//! Totals of a run, printed by `run --drain`.

use std::time::Duration;

use crate::sink::WriteReport;

/// Totals for one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Messages received from SQS (redeliveries included).
    pub received: u64,
    /// Rows committed to `user_logins`.
    pub written: u64,
    /// Entries committed to `quarantined_messages`.
    pub quarantined: u64,
    /// Redeliveries skipped because their id was already committed.
    pub duplicates: u64,
    /// Logins not written because their user was erased after they were sent.
    pub erased: u64,
    /// Committed messages whose delete SQS refused (they come back and are skipped as duplicates).
    pub delete_failures: u64,
    /// Wall time of the run, including the final idle wait of `--drain`.
    pub elapsed: Duration,
    /// From the start to the last commit: the time actually spent moving messages.
    pub busy: Duration,
}

impl Summary {
    /// Received messages per second of busy time (the idle tail of a drain is not throughput).
    pub fn messages_per_second(&self) -> f64 {
        self.received as f64 / self.busy.as_secs_f64().max(1e-9)
    }

    pub(super) fn add(&mut self, report: WriteReport, received: usize) {
        self.received += received as u64;
        self.written += report.rows;
        self.quarantined += report.quarantined;
        self.duplicates += report.duplicates;
        self.erased += report.erased;
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "received {}, written {}, quarantined {}, duplicates skipped {}, delete failures {}, \
             elapsed {:.2}s (busy {:.2}s), {:.0} messages/s",
            self.received,
            self.written,
            self.quarantined,
            self.duplicates,
            self.delete_failures,
            self.elapsed.as_secs_f64(),
            self.busy.as_secs_f64(),
            self.messages_per_second()
        )?;
        if self.erased > 0 {
            write!(f, ", erased users' logins left out {}", self.erased)?;
        }
        Ok(())
    }
}
