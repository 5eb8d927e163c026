//! Where the simulation runs. `cargo test sim::` runs the regression seeds and a bounded set (the
//! first `SIM_SEEDS`, 40 by default); `scripts/sim.sh` runs the ignored ones: a campaign
//! (`SIM_SEEDS` or `SIM_MINUTES` from `SIM_START`), one seed replayed (`SIM_SEED`, with
//! `SIM_SHRUNK`), or the mutants (`--features sim-mutants`).

use std::collections::BTreeMap;
use std::time::Instant;

use super::runner::{self, Scenario};
use super::shrink::{self, Subset};

/// Seeds that once failed, kept so the bug stays fixed.
const REGRESSION: &[u64] = &[
    // An element dead letter, redriven, resolved its message's whole poison entry, and the whole
    // copy then landed nothing: entries are now keyed by the login they stand for.
    207_136,
];

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Shrink a failing seed and say how to replay it.
fn failure(seed: u64, violations: &[String]) -> String {
    let (subset, found) = shrink::shrink(seed, env("SIM_SHRINK_RUNS").unwrap_or(80));
    let first = found
        .first()
        .or(violations.first())
        .cloned()
        .unwrap_or_default();
    format!(
        "seed {seed} breaks a promise: {first}\n  (all: {violations:?})\n  replay: scripts/sim.sh{} --seed {seed} --shrunk '{}'",
        if runner::early_redrive() { "" } else { " --no-early-redrive" },
        subset.spec()
    )
}

#[test]
fn seeds_keep_every_promise() {
    let seeds = env("SIM_SEEDS").unwrap_or(40u64);
    for seed in REGRESSION.iter().copied().chain(0..seeds) {
        let report = runner::run(&Scenario::of(seed));
        assert!(
            report.violations.is_empty(),
            "{}",
            failure(seed, &report.violations)
        );
    }
}

/// Found by the simulation: a dead letter of one login (`<id>#<i>`) redriven before its original
/// message's transaction committed (a crash between forward and commit, then an early redrive)
/// was written as a new entry `(<id>#<i>, -1)`, and the original, committed later, added
/// `(<id>, i)`: one login, two open entries. Entries are now keyed by the login they stand for.
#[test]
fn a_dead_letter_redriven_before_its_original_committed_is_one_login() {
    for (seed, shrunk) in [(5060, "m=9.14.15.16;off=clock_jump.delete_error.extend_error.forward_error.read_only.receive_error.throttled.write_fails_before_commit"), (5002, "")] {
        let report = runner::run(&Subset::parse(shrunk).apply(Scenario::of(seed)));
        assert!(report.violations.is_empty(), "seed {seed}: {:?}", report.violations);
    }
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 11] {
        let (a, b) = (
            runner::run(&Scenario::of(seed)),
            runner::run(&Scenario::of(seed)),
        );
        assert_eq!(a.trace, b.trace, "seed {seed}: two runs, two traces");
        assert_eq!(a.coverage, b.coverage);
    }
}

#[test]
#[ignore = "a campaign: scripts/sim.sh"]
fn campaign() {
    if let Some(seed) = env::<u64>("SIM_SEED") {
        let subset = Subset::parse(&std::env::var("SIM_SHRUNK").unwrap_or_default());
        let report = runner::run(&subset.apply(Scenario::of(seed)));
        println!(
            "seed {seed}: trace {:016x}, coverage {:?}",
            report.trace, report.coverage
        );
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:#?}",
            report.violations
        );
        return;
    }
    let start = env("SIM_START").unwrap_or(1_000u64);
    let most = env("SIM_SEEDS").unwrap_or(u64::MAX);
    let minutes: f64 = env("SIM_MINUTES").unwrap_or(if most == u64::MAX { 1.0 } else { f64::MAX });
    let began = Instant::now();
    let (mut coverage, mut failures, mut seeds) = (BTreeMap::new(), Vec::new(), 0u64);
    while seeds < most && began.elapsed().as_secs_f64() < minutes * 60.0 {
        let seed = start + seeds;
        let report = runner::run(&Scenario::of(seed));
        for (k, n) in report.coverage {
            *coverage.entry(k).or_insert(0u64) += n;
        }
        if !report.violations.is_empty() {
            let text = failure(seed, &report.violations);
            println!("{text}");
            failures.push(text);
        }
        seeds += 1;
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "{seeds} seeds ({start}..{}) in {secs:.0} s: {:.1} seeds/s",
        start + seeds,
        seeds as f64 / secs
    );
    println!("coverage (count over all seeds):");
    for (k, n) in &coverage {
        println!("  {k:<40} {n}");
    }
    assert!(
        failures.is_empty(),
        "{} failing seeds:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[cfg(feature = "sim-mutants")]
#[test]
#[ignore = "the mutants: scripts/sim.sh --mutants"]
fn every_mutant_is_found() {
    let only = std::env::var("SIM_MUTANT").ok();
    let most = env("SIM_MUTANT_SEEDS").unwrap_or(300u64);
    let sample = env("SIM_MUTANT_SAMPLE").unwrap_or(100u64);
    let mut missed = Vec::new();
    for (mutant, name) in crate::mutants::ALL {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        crate::mutants::set(Some(mutant));
        let found = (0..most).find_map(|seed| {
            let report = runner::run(&Scenario::of(seed));
            report.violations.first().map(|v| (seed, v.clone()))
        });
        // How often: of the first `sample` seeds, how many see it.
        let seen = (0..sample)
            .filter(|&seed| !runner::run(&Scenario::of(seed)).violations.is_empty())
            .count();
        crate::mutants::set(None);
        match found {
            Some((seed, violation)) => println!(
                "mutant {name:<26} FOUND after {} seeds (seed {seed}; {seen} of the first {sample} seeds see it): {violation}",
                seed + 1
            ),
            None => {
                println!("mutant {name:<26} NOT FOUND in {most} seeds");
                missed.push(name);
            }
        }
    }
    assert!(missed.is_empty(), "mutants not found: {missed:?}");
}
