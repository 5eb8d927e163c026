#!/usr/bin/env bash
# Peak RSS of `login-etl run --drain` over a flood: N synthetic messages (default 100000) are queued
# first, then drained by the release binary into a scratch database. With --hostile, N (default
# 200) of each shape that could cost memory are queued instead: gzip bombs, arrays over the
# --max-logins-per-message cap (plain, and gzip'd to just under 1 MiB of tiny elements) and
# valid arrays of 1,000 logins (scripts/hostile-messages.py). With --field-names, N (default
# 20000) valid logins each carrying 5 never-seen field names are queued instead
# (scripts/field-name-messages.py): what the sink remembers of them is bounded.
# Usage: scripts/measure-memory.sh [--hostile | --field-names] [N]
#   LOGIN_ETL_BIN=path measures that build instead (e.g. target/mimalloc/release/login-etl)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mode=plain
case ${1:-} in --hostile) mode=hostile; shift ;; --field-names) mode=field-names; shift ;; esac
case $mode in hostile) default=200 ;; field-names) default=20000 ;; *) default=100000 ;; esac
count=${1:-$default}
scripts/stack-up.sh
bin=${LOGIN_ETL_BIN:-}
[ -n "$bin" ] || { cargo build --release --locked --quiet; bin=$target_dir/release/login-etl; }
db=login_etl_memory_$$   # its own database and queue: several runs may overlap
scratch_run "$db" "login-etl-memory-$$"
if [ "$mode" = hostile ]; then
  "$stack_dir/localstack-venv/bin/python" "$root/scripts/hostile-messages.py" \
    http://127.0.0.1:4566 "$LOGIN_ETL_QUEUE_NAME" "$count"
elif [ "$mode" = field-names ]; then
  "$stack_dir/localstack-venv/bin/python" "$root/scripts/field-name-messages.py" \
    http://127.0.0.1:4566 "$LOGIN_ETL_QUEUE_NAME" "$count" 5
else
  echo "queueing $count messages..."
  "$bin" send-sample --count "$count" --bad-share 0.01 --seed 7
fi
echo "draining with /usr/bin/time..."
/usr/bin/time -f "peak RSS %M KiB, wall %e s, user %U s, sys %S s" "$bin" run --drain 2> >(grep -v ' INFO ' >&2)
"$bin" status
psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
