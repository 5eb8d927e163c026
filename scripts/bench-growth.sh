#!/usr/bin/env bash
# How the tables behave as they grow (release build, local PostgreSQL), in one run: batch commit
# latency with and without a 2,000,000-id ledger prune running, and user_logins plain vs
# partitioned by month at N rows (default 5,000,000): load, duplicates report, removing a month.
# Usage: scripts/bench-growth.sh [--rows N]      (5M rows: about 10 minutes on 2 cores)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
scripts/stack-up.sh
cargo bench --locked --bench growth -- "$@"
