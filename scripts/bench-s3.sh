#!/usr/bin/env bash
# The S3 source against the physical limit (issue 34): OBJECTS gzip'd NDJSON objects of LOGINS
# logins each (default 20 x 25,000 = 500,000) put in LocalStack's S3, enqueued by `backfill`, drained
# by one consumer (release build) with its peak RSS; then the same number of rows loaded into the
# same table by `psql \copy`, in the same run. Prints logins/s of both and their ratio.
# Usage: scripts/bench-s3.sh [OBJECTS] [LOGINS]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
objects=${1:-20} logins=${2:-25000}
scripts/stack-up.sh
cargo build --release --locked --quiet --bin login-etl
bin=$target_dir/release/login-etl
db=login_etl_bench_s3_$$ bucket=login-etl-bench-$$
scratch_run "$db" "login-etl-bench-s3-$$"
csv=$(mktemp)
trap 'rm -f "$csv"; psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
"$stack_dir/localstack-venv/bin/python" "$root/scripts/bench-s3.py" http://127.0.0.1:4566 "$bucket" "$objects" "$logins" "$csv"
"$bin" migrate 2> >(grep -v ' INFO ' >&2)
"$bin" backfill "s3://$bucket/history/"
start=$(date +%s.%N)
/usr/bin/time -f "login-etl: peak RSS %M KiB, user %U s, sys %S s" "$bin" run --drain 2> >(grep -v ' INFO ' >&2)
etl=$(echo "$(date +%s.%N) - $start" | bc)
rows=$(psql -X -qtA -h 127.0.0.1 -U postgres -d "$db" -c "SELECT count(*) FROM user_logins")
psql -X -q -h 127.0.0.1 -U postgres -d "$db" -c "TRUNCATE user_logins"
start=$(date +%s.%N)
psql -X -q -h 127.0.0.1 -U postgres -d "$db" -c "\\copy user_logins (user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date, sent_at) FROM '$csv' WITH (FORMAT csv)"
copy=$(echo "$(date +%s.%N) - $start" | bc)
total=$((objects * logins))
printf 'rows landed %s of %s\n' "$rows" "$total"
printf 'S3 source: %.0f logins/s (%.1f s); psql \\copy: %.0f logins/s (%.1f s); ratio %.2f\n' \
  "$(echo "$total / $etl" | bc -l)" "$etl" "$(echo "$total / $copy" | bc -l)" "$copy" "$(echo "$copy / $etl" | bc -l)"
