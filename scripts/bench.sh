#!/usr/bin/env bash
# Throughput benchmark on the local stack; prints messages/s per stage and their ratios.
# Usage: scripts/bench.sh [--messages N] [--receivers R]   (defaults: 20000, 4)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
scripts/stack-up.sh
cargo bench --locked --bench pipeline -- "$@"
