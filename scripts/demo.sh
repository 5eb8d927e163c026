#!/usr/bin/env bash
# The main job, end to end, on a local stack:
#   stack up -> queue `login-queue` created -> 100 sample messages loaded -> pipeline drains the queue
#   -> what landed is shown (counts, masked rows, quarantined messages with reasons).
# Running it again adds nothing: the sample is loaded only into an empty database (use --reset to
# start over with a fresh database and queue).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
reset=0
for arg in "$@"; do
  case "$arg" in
    --reset) reset=1 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

scripts/stack-up.sh

export LOGIN_ETL_SQS_ENDPOINT=${LOGIN_ETL_SQS_ENDPOINT:-http://127.0.0.1:4566}
export LOGIN_ETL_QUEUE_NAME=${LOGIN_ETL_QUEUE_NAME:-login-queue}
db_name=${LOGIN_ETL_DEMO_DB:-login_etl}
export LOGIN_ETL_DATABASE_URL=${LOGIN_ETL_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/$db_name}
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d postgres "$@"; }
psql_demo() { psql -X -v ON_ERROR_STOP=1 "$LOGIN_ETL_DATABASE_URL" "$@"; }

echo "==> building login-etl"
cargo build --quiet
bin=$target_dir/debug/login-etl

if [ "$reset" = 1 ]; then
  echo "==> --reset: dropping database $db_name and the queue's messages"
  psql_admin -c "DROP DATABASE IF EXISTS $db_name"
  "$bin" purge-queue --yes >/dev/null 2>&1 || true
fi
if [ -z "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$db_name'")" ]; then
  psql_admin -c "CREATE DATABASE $db_name"
fi

# The demo never needs a real secret; production must bring its own key (see docs/privacy.md).
key_file=$root/.stack/dev-mask.key
if [ -z "${LOGIN_ETL_MASK_KEY:-}" ] && [ -z "${LOGIN_ETL_MASK_KEY_FILE:-}" ]; then
  if [ ! -s "$key_file" ]; then
    mkdir -p "$(dirname "$key_file")"
    # Under a key id of its own: another checkout's demo on this machine shares the database but
    # not this key, and must read as another key (its rows stay), not as key `k1` replaced (which
    # `run` refuses, docs/recovery.md).
    (umask 077 && echo "dev-$(random_key | cut -c1-8):$(random_key)" >"$key_file")
    echo "==> created a local development masking key in $key_file (demo only: production keys come from a secret store)"
  fi
  export LOGIN_ETL_MASK_KEY_FILE=$key_file
fi

"$bin" migrate
already=$(psql_demo -tAc "SELECT count(*) FROM processed_messages")
if [ "$already" = 0 ]; then
  echo "==> loading the 100-message sample into $LOGIN_ETL_QUEUE_NAME"
  "$bin" send-sample --create-queue
else
  echo "==> $already messages already processed in $db_name: not loading the sample again (--reset starts over)"
  # LocalStack keeps no state across restarts: make sure the (empty) queue exists to drain.
  "$bin" send-sample --create-queue --count 0 >/dev/null
fi

echo "==> draining the queue"
if ! "$bin" run --drain; then
  echo "demo: the drain stopped (the line above says why); scripts/demo.sh --reset starts the demo over with an empty database" >&2
  exit 1
fi

echo "==> what landed"
"$bin" status
echo
echo "-- five masked rows (ip and device_id are HMAC-SHA256 masks) --"
psql_demo -c "SELECT user_id, device_type, left(masked_ip, 16) || '…' AS masked_ip,
                     left(masked_device_id, 16) || '…' AS masked_device_id, locale, app_version, create_date
              FROM user_logins ORDER BY user_id LIMIT 5"
echo "-- shared devices and addresses (equal values, equal masks) --"
"$bin" report duplicates --limit 3
echo
echo "-- quarantined messages --"
psql_demo -c "SELECT message_id, reason_code, reason, body_masked FROM quarantined_messages ORDER BY received_at"
