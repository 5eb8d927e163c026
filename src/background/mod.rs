//! The background loops beside the pipeline while `run` consumes — the depth/readiness probe and
//! the database upkeep — and the wiring of telemetry into the layers below, which record nothing
//! themselves (the retry policy reports through an observer).
//! Above `pipeline`, `sink`, `source` and `telemetry`; only `commands` uses it.

mod maintenance;
mod probe;

pub(crate) use maintenance::{maintenance_loop, Upkeep};
pub(crate) use probe::probe_loop;

/// Count every retry of the retry policy in the metrics (`login_etl_retries_total{kind}`).
pub(crate) fn count_retries() {
    crate::retry::observe_retries(crate::telemetry::metrics::retry);
}
