#!/usr/bin/env bash
# The whole test suite: unit tests, property tests and integration tests against a real PostgreSQL,
# a real LocalStack SQS and two query-protocol-only SQS emulators (brought up first by stack-up.sh
# and query-sqs-up.sh if they are not running).
# The full run (no arguments) also builds the container image from the Dockerfile with podman and
# runs it against the stack (scripts/image-test.sh; LOGIN_ETL_SKIP_IMAGE_TEST=1 leaves it out),
# builds the .deb, installs it and drains the sample with the unit's ExecStart (scripts/deb-test.sh;
# LOGIN_ETL_SKIP_DEB_TEST=1 leaves it out), and fuzzes the pure middle for LOGIN_ETL_FUZZ_SECONDS
# (default 30; scripts/fuzz.sh; 0 leaves it out).
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh --test it pipeline::` (one area of
# the integration tests) or `scripts/test.sh --lib` (unit and property tests only); such a partial
# run leaves out the image test, the .deb test and the fuzz run.
# Nothing is left out silently: every part not run is one `skipped: …` line in the summary, and
# under CI=true any skip fails the run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
scripts/stack-up.sh
# SQS emulators that speak only the query protocol (the take-home's image), for tests/it/query_protocol.rs.
scripts/query-sqs-up.sh
# Dockerfile, compose, Kubernetes/KEDA and CloudFormation, validated offline.
scripts/validate-deploy.sh

skipped=()        # one line each, with its reason
failed_parts=()   # parts other than `cargo test` that failed, with their status
# Run a part of the suite that is not `cargo test` (its output merged into ours): exit 77 is its
# own skip when it printed a `skipped:` line (the last one is its reason); any other non-zero, a
# failure. A part that passed but said `skipped:` (its own `[script] skipped: …` lines) left
# those steps out: each is a skip.
part() {
  local name=$1 out code=0 step
  shift
  out=$(mktemp)
  "$@" 2>&1 | tee "$out" || code=${PIPESTATUS[0]}
  if [ "$code" -eq 77 ] && grep -q "skipped: " "$out"; then
    skipped+=("$name ($(sed -n 's/.*skipped: //p' "$out" | tail -n 1))")
  elif [ "$code" -ne 0 ]; then
    failed_parts+=("$name ($*) failed with status $code")
  else
    while IFS= read -r step; do
      skipped+=("$name: $step")
    done < <(sed -n 's/^\[[^]]*\] skipped: //p' "$out")
  fi
  rm -f "$out"
}
if [ $# -gt 0 ]; then
  skipped+=("image test (arguments given: a partial run)" ".deb test (arguments given: a partial run)"
    "fuzz run (arguments given: a partial run)")
else
  if [ -n "${LOGIN_ETL_SKIP_IMAGE_TEST:-}" ]; then
    skipped+=("image test (LOGIN_ETL_SKIP_IMAGE_TEST=$LOGIN_ETL_SKIP_IMAGE_TEST)")
  else
    part "image test" scripts/image-test.sh
  fi
  if [ -n "${LOGIN_ETL_SKIP_DEB_TEST:-}" ]; then
    skipped+=(".deb test (LOGIN_ETL_SKIP_DEB_TEST=$LOGIN_ETL_SKIP_DEB_TEST)")
  else
    part ".deb test" scripts/deb-test.sh
  fi
  fuzz_seconds=${LOGIN_ETL_FUZZ_SECONDS:-30}
  if [ "$fuzz_seconds" = 0 ]; then
    skipped+=("fuzz run (LOGIN_ETL_FUZZ_SECONDS=0)")
  else
    part "fuzz run" scripts/fuzz.sh "$fuzz_seconds"
  fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Under pipefail a failing `cargo test` would end the script here, before the summary: keep its
# status, print the summary, then exit with it. --no-fail-fast: a failing binary does not keep
# the ones after it from running (and from being counted).
status=0
# The deterministic simulation (src/sim/): this many seeds, about a minute (scripts/sim.sh for campaigns).
export SIM_SEEDS="${SIM_SEEDS:-800}"
cargo test --locked --no-fail-fast --features test-hooks "$@" 2>&1 | tee "$log" || status=$?
if [ "$status" -ne 0 ]; then
  echo "cargo test exited with status $status" >&2
fi
for failure in "${failed_parts[@]}"; do
  echo "$failure" >&2
  [ "$status" -ne 0 ] || status=1
done
if [ "${#skipped[@]}" -gt 0 ] && [ "${CI:-}" = true ]; then
  echo "CI=true: nothing may be skipped, and ${#skipped[@]} part(s) were" >&2
  [ "$status" -ne 0 ] || status=1
fi
# The closing lines: one `skipped:` line per part left out, then scripts/test-summary.awk's
# (binaries started vs finished, which did not finish, and last the plain line CI reads:
# `summary: N passed, N failed[, N skipped]`).
for skip in "${skipped[@]}"; do
  echo "skipped: $skip"
done
awk -v skipped="${#skipped[@]}" -f scripts/test-summary.awk "$log"
exit "$status"
