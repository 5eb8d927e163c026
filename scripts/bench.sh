#!/usr/bin/env bash
# Throughput benchmark on the local stack; prints messages/s per stage and their ratios.
# Usage: scripts/bench.sh [--messages N] [--receivers R]   (defaults: 20000, 4)
set -euo pipefail
# Local runs never need EC2 instance metadata; don't let the AWS SDK go looking for it.
export AWS_EC2_METADATA_DISABLED=true
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/stack-up.sh
cargo bench --locked --bench pipeline -- "$@"
