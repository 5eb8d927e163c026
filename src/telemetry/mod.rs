//! What an operator sees of a running consumer: Prometheus metrics, liveness and readiness
//! (served by [`server`] with `--metrics-addr`), and the probe that keeps the queue-depth gauges
//! and readiness current.
//!
//! Metrics go through the `metrics` facade: without `--metrics-addr` no recorder is installed and
//! every call is a no-op. No label ever carries a message value, a message id or anything from a
//! body: labels are reason codes, retry kinds and queue roles, fixed sets known at compile time.

mod health;
pub(crate) mod metrics;
mod probe;
mod server;

pub(crate) use health::health;
pub(crate) use probe::probe_loop;
pub(crate) use server::serve;
