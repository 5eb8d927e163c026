//! A deterministic simulation of the pipeline (issue 33): the real `pipeline::run` — receivers,
//! batcher, committer, refused-row isolation, acknowledger, heartbeat, dead-letter forwarding,
//! `transform::process_with` — over a simulated SQS and a simulated PostgreSQL, on tokio's paused
//! clock, with faults and crashes drawn from one seed, invariants checked at every call and at the
//! end. A failing seed is shrunk and printed with the one command that replays it. See
//! docs/reliability.md ("The simulation").
//!
//! - `shapes.rs`: message bodies of every shape, with what each must become and its planted PII.
//! - `faults.rs`: the fault plan of a seed. `world.rs`: the durable state incarnations share.
//! - `queue.rs` / `store.rs`: the simulated queue and database (`period_keys.rs`: its period keys,
//!   and a `shred` that strikes just before a write). `check.rs`: the end invariants.
//! - `runner.rs`: one seed's run. `shrink.rs`: fewer messages, fewer faults. `tests.rs`: where
//!   it runs (the bounded set in `cargo test`, campaigns and mutants through `scripts/sim.sh`).

mod check;
mod faults;
mod labels;
mod period_keys;
mod queue;
mod runner;
mod shapes;
mod shrink;
mod store;
mod tests;
mod world;
