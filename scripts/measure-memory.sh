#!/usr/bin/env bash
# Peak RSS of `login-etl run --drain` over a flood: N synthetic messages (default 100000) are queued
# first, then drained by the release binary into a scratch database. With --hostile, N (default
# 200) of each shape that could cost memory are queued instead: gzip bombs, arrays over the
# --max-logins-per-message cap (plain, and gzip'd to just under 1 MiB of tiny elements) and
# valid arrays of 1,000 logins (scripts/hostile-messages.py).
# Usage: scripts/measure-memory.sh [--hostile] [N]
#   LOGIN_ETL_BIN=path measures that build instead (e.g. target/mimalloc/release/login-etl)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
hostile=false
if [[ ${1:-} == --hostile ]]; then hostile=true; shift; fi
count=${1:-$($hostile && echo 200 || echo 100000)}
scripts/stack-up.sh
bin=${LOGIN_ETL_BIN:-}
[ -n "$bin" ] || { cargo build --release --locked --quiet; bin=$root/target/release/login-etl; }
db=login_etl_memory
scratch_run "$db" login-etl-memory
if $hostile; then
  "$root/.stack/localstack-venv/bin/python" "$root/scripts/hostile-messages.py" \
    http://127.0.0.1:4566 "$LOGIN_ETL_QUEUE_NAME" "$count"
else
  echo "queueing $count messages..."
  "$bin" send-sample --count "$count" --bad-share 0.01 --seed 7
fi
echo "draining with /usr/bin/time..."
/usr/bin/time -f "peak RSS %M KiB, wall %e s, user %U s, sys %S s" "$bin" run --drain 2> >(grep -v ' INFO ' >&2)
"$bin" status
psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
