#!/usr/bin/env bash
# Benchmarks on the local stack.
#   1. throughput: messages/s per stage and their ratios (benches/pipeline.rs)
#   2. CPU per message: login-etl's getrusage CPU / message and messages/s, draining LocalStack
#      and the in-memory SQS stand-in (examples/sqs-stand-in.rs), variants alternated, medians
#      (scripts/bench-cpu.py; extra variants: --variant NAME=ENV_VAR=VALUE; --instructions adds
#      callgrind's instructions per message, which the machine's load does not move)
# Usage: scripts/bench.sh [--messages N] [--receivers R]     both parts
#        scripts/bench.sh --cpu [--messages N] [--rounds R] [--variant …] [--instructions]   the second only
set -euo pipefail
source "$(dirname "$0")/lib.sh"
scripts/stack-up.sh
cpu_only=false
if [[ ${1:-} == --cpu ]]; then cpu_only=true; shift; fi
$cpu_only || cargo bench --locked --bench pipeline -- "$@"
cargo build --release --locked --quiet --bin login-etl --example sqs-stand-in
if [[ " $* " == *" --instructions "* ]] && ! command -v valgrind >/dev/null; then apt_install valgrind; fi
db=login_etl_bench_cpu
fresh_database "$db"
python3 "$root/scripts/bench-cpu.py" "$target_dir/release/login-etl" \
  "$target_dir/release/examples/sqs-stand-in" "postgres://postgres@127.0.0.1:5432/$db" \
  $($cpu_only && printf '%q ' "$@")
