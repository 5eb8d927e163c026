//! Liveness and readiness state, process-wide like the metrics recorder.
//!
//! Live: every task of the pipeline is running (a task that failed or panicked sets `failed`).
//! Ready: SQS and PostgreSQL both answered the probe recently, and their latest probe succeeded.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How recent a successful probe must be for `/readyz`.
const READY_WINDOW: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(crate) struct Health {
    failed: Mutex<Option<String>>,
    sqs: Probe,
    postgres: Probe,
}

#[derive(Default)]
struct Probe {
    last_ok_ms: AtomicI64,
    error: Mutex<Option<String>>,
}

impl Probe {
    fn record(&self, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.last_ok_ms
                    .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
                *self.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            Err(e) => *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e),
        }
    }

    fn check(&self, name: &str) -> Result<(), String> {
        if let Some(e) = self.error.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(format!("{name}: {e}"));
        }
        let last = self.last_ok_ms.load(Ordering::Relaxed);
        let age = chrono::Utc::now().timestamp_millis() - last;
        if last == 0 || age > READY_WINDOW.as_millis() as i64 {
            return Err(format!(
                "{name} has not answered in the last {}s",
                READY_WINDOW.as_secs()
            ));
        }
        Ok(())
    }
}

/// The process's health state.
pub(crate) fn health() -> &'static Health {
    static HEALTH: OnceLock<Health> = OnceLock::new();
    HEALTH.get_or_init(Health::default)
}

impl Health {
    /// A task ended abnormally: the process is no longer healthy.
    pub(crate) fn task_failed(&self, why: String) {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(why);
    }

    pub(crate) fn sqs_answered(&self, result: Result<(), String>) {
        self.sqs.record(result);
    }

    pub(crate) fn postgres_answered(&self, result: Result<(), String>) {
        self.postgres.record(result);
    }

    /// `/healthz`: why not, if not.
    pub(crate) fn live(&self) -> Result<(), String> {
        match self
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// `/readyz`: why not, if not.
    pub(crate) fn ready(&self) -> Result<(), String> {
        self.live()?;
        self.sqs.check("SQS")?;
        self.postgres.check("PostgreSQL")
    }
}
