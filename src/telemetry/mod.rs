//! What an operator sees of a running consumer: Prometheus metrics, liveness and readiness
//! (served by [`server`] with `--metrics-addr`). A leaf: it records plain values and knows no
//! type of the pipeline, the source or the sink (the probe that feeds it lives in `background`).
//!
//! Metrics go through the `metrics` facade: without `--metrics-addr` no recorder is installed and
//! every call is a no-op. No label ever carries a message value, a message id or anything from a
//! body: labels are reason codes, retry kinds and queue roles, fixed sets known at compile time.

mod health;
pub(crate) mod metrics;
mod server;

pub(crate) use health::health;
pub(crate) use server::serve;
