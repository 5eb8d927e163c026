#!/usr/bin/env bash
# The whole test suite: unit tests, property tests and integration tests against a real PostgreSQL,
# a real LocalStack SQS and two query-protocol-only SQS emulators (brought up first by stack-up.sh
# and query-sqs-up.sh if they are not running).
# The full run (no arguments) also builds the container image from the Dockerfile with podman and
# runs it against the stack (scripts/image-test.sh; LOGIN_ETL_SKIP_IMAGE_TEST=1 leaves it out), and
# builds, installs and drains with the .deb (scripts/deb-test.sh; LOGIN_ETL_SKIP_DEB_TEST=1).
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh --test it pipeline::` (one area of
# the integration tests) or `scripts/test.sh --lib` (unit and property tests only).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
scripts/stack-up.sh
# SQS emulators that speak only the query protocol (the take-home's image), for tests/it/query_protocol.rs.
scripts/query-sqs-up.sh
# Dockerfile, compose, Kubernetes/KEDA and CloudFormation, validated offline.
scripts/validate-deploy.sh
image_status=0 deb_status=0
if [ $# -eq 0 ] && [ -z "${LOGIN_ETL_SKIP_IMAGE_TEST:-}" ]; then
  scripts/image-test.sh || image_status=$?
fi
if [ $# -eq 0 ] && [ -z "${LOGIN_ETL_SKIP_DEB_TEST:-}" ]; then
  scripts/deb-test.sh || deb_status=$?
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Under pipefail a failing `cargo test` would end the script here, before the summary: keep its
# status, print the summary, then exit with it.
status=0
cargo test --locked --features test-hooks "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite (cargo prints one per test binary). A test binary that
# did not finish (a build error, a crash) has no result line: say so rather than undercount.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
if [ "$status" -ne 0 ]; then
  echo "cargo test exited with status $status" >&2
fi
if [ "$image_status" -ne 0 ]; then
  echo "the container image test (scripts/image-test.sh) failed with status $image_status" >&2
  [ "$status" -ne 0 ] || status=$image_status
fi
if [ "$deb_status" -ne 0 ]; then
  echo "the .deb test (scripts/deb-test.sh) failed with status $deb_status" >&2
  [ "$status" -ne 0 ] || status=$deb_status
fi
exit "$status"
