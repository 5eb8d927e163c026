#!/usr/bin/env bash
# The deterministic simulation (src/sim/, docs/reliability.md "The simulation").
#   scripts/sim.sh --seeds N | --minutes M [--start S]   a campaign: seeds/s, coverage, failures
#   scripts/sim.sh --seed N [--shrunk SPEC]             replay one seed exactly (as printed)
#   scripts/sim.sh --mutants [--only NAME] [--max N]    each deliberate bug: found, after how many seeds
#   --no-early-redrive: no scenario redrives dead letters while faults last (as before issue 33's fix)
# A debug build (the warmed one): about 20 seeds/s on this 2-core machine, enough for campaigns.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
features=test-hooks
test=sim::tests::campaign
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) export SIM_SEEDS="$2"; shift 2 ;;
    --minutes) export SIM_MINUTES="$2"; shift 2 ;;
    --start) export SIM_START="$2"; shift 2 ;;
    --seed) export SIM_SEED="$2"; shift 2 ;;
    --shrunk) export SIM_SHRUNK="$2"; shift 2 ;;
    --no-early-redrive) export SIM_EARLY_REDRIVE=0; shift ;;
    --mutants) features=test-hooks,sim-mutants; test=sim::tests::every_mutant_is_found; shift ;;
    --only) export SIM_MUTANT="$2"; shift 2 ;;
    --max) export SIM_MUTANT_SEEDS="$2"; shift 2 ;;
    *) die "unknown argument $1 (see the top of $0)" ;;
  esac
done
say "simulation: $test (features $features)"
cargo test --features "$features" --lib "$test" -- --ignored --exact --nocapture --test-threads 1
