#!/usr/bin/env bash
# How `login-etl report duplicates` scales: N synthetic masked rows (default 1,000,000) are bulk
# loaded, then the report is timed with migration 3's indexes and without them, in one run.
# Usage: scripts/bench-report.sh [N]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
rows=${1:-1000000}
scripts/stack-up.sh >/dev/null
cargo build --quiet --locked
bin=$target_dir/debug/login-etl
db=login_etl_report_bench
fresh_database "$db"
export LOGIN_ETL_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db
"$bin" migrate >/dev/null 2>&1
# Devices and addresses drawn from pools a third of the row count, so many are shared.
psql -X -q "$LOGIN_ETL_DATABASE_URL" <<SQL
INSERT INTO user_logins (user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date)
SELECT md5('u' || (random() * $rows)::int), 'android',
       'k1:' || encode(sha256(('ip' || (random() * $rows / 3)::int)::bytea), 'hex'),
       'k1:' || encode(sha256(('dev' || (random() * $rows / 3)::int)::bytea), 'hex'),
       'RU', '2.3.0', current_date
FROM generate_series(1, $rows);
VACUUM ANALYZE user_logins;
SQL
# Wall time of one report, in milliseconds.
time_report() {
  local start end
  start=$(date +%s%N)
  "$bin" report duplicates --format json --limit 20 >/dev/null
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}
with_1=$(time_report); with_2=$(time_report)
psql -X -q "$LOGIN_ETL_DATABASE_URL" -c "DROP INDEX user_logins_device_users, user_logins_ip_users"
without_1=$(time_report); without_2=$(time_report)
printf 'rows: %d\nreport duplicates with indexes:    %d ms, %d ms\nreport duplicates without indexes: %d ms, %d ms\n' \
  "$rows" "$with_1" "$with_2" "$without_1" "$without_2"
python3 -c "print(f'without / with = {($without_1 + $without_2) / ($with_1 + $with_2):.1f}x')"
psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
