#!/usr/bin/env bash
# The S3 source under crashes, at scale (issue 34), and its memory on one large object.
#
#   scripts/bench-s3-crash.sh [crash]   1,000,000 logins (0.01 % bad) in 40 gzip'd NDJSON objects
#       of uneven sizes (4 of 60,000-200,000 logins, two over 50 MB uncompressed; 36 small) in
#       LocalStack's S3, enqueued by `backfill`, one object's notification sent twice (a second
#       `backfill` of its exact key); loaded by CONSUMERS (4) release-build `run`s on one queue, a
#       random one SIGKILLed every KILL_EVERY (3) seconds and restarted at once, for KILL_FOR (40)
#       seconds or until the queue is empty. The consumers run `run --drain`; one that drained
#       during the kills (the rest of the queue held by the others) is started again, so CONSUMERS
#       run throughout; after the kills every slot drains again until the queue is empty.
#       Then the same logins, one SQS message each, through the in-memory SQS stand-in
#       (examples/sqs-stand-in.rs: LocalStack would take ~8 minutes to deliver them) drained by
#       CONSUMERS `run --drain` (no kills) into a second scratch database.
#       Prints logins/s of both paths, the kills, each consumer slot's peak RSS (/usr/bin/time, the
#       most of every process that ran in the slot), and the books of both databases: rows,
#       quarantined, duplicates and missing by user_id (each login has its own), and for the S3
#       path the ledger against every expected chunk id. Exit 1 unless both are exact.
#   scripts/bench-s3-crash.sh big [LOGINS]   one object of LOGINS (3,300,000: ~1.0 GB
#       uncompressed) logins, generated and uploaded streamed, read by one consumer (`run
#       --drain`): its peak RSS and logins/s, and the books.
#
# Environment: CONSUMERS, KILL_EVERY, KILL_FOR, VISIBILITY (the queue's visibility timeout in
# seconds, 10: how soon what a killed consumer held comes back).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mode=${1:-crash}
case "$mode" in crash | big) ;; *) sed -n '2,25p' "$0"; exit 2 ;; esac
consumers=${CONSUMERS:-4} kill_every=${KILL_EVERY:-3} kill_for=${KILL_FOR:-40} visibility=${VISIBILITY:-10}
python=$stack_dir/localstack-venv/bin/python
helper=$root/scripts/bench-s3-crash.py
localstack=http://127.0.0.1:4566

scripts/stack-up.sh
cargo build --release --locked --quiet --bin login-etl --example sqs-stand-in
bin=$target_dir/release/login-etl
tag=$$
db=login_etl_bench_crash_$tag db2=login_etl_bench_crash_msg_$tag
bucket=login-etl-bench-crash-$tag queue=login-etl-bench-crash-$tag
work=$(mktemp -d)
# Consumer slots: slot[i] is the /usr/bin/time pid of the process running in slot i; every run of
# a slot writes its peak RSS (KiB) to its own file.
declare -a slot runs
stand_in=
# The login-etl of slot $1 (the child of its /usr/bin/time), if it still runs.
child() { pgrep -P "${slot[$1]}" || true; }
cleanup() {
  for i in "${!slot[@]}"; do
    victim=$(child "$i")
    [ -z "$victim" ] || kill -KILL "$victim" 2>/dev/null || true
  done
  [ -z "$stand_in" ] || kill -KILL "$stand_in" 2>/dev/null || true
  "$python" "$helper" clean "$localstack" "$bucket" || true
  if [ -n "${LOGIN_ETL_QUEUE_NAME:-}" ]; then
    curl -fsS -X POST "$localstack/" -H 'X-Amz-Target: AmazonSQS.DeleteQueue' \
      -H 'Content-Type: application/x-amz-json-1.0' \
      -d "{\"QueueUrl\":\"$localstack/000000000000/$queue\"}" >/dev/null 2>&1 || true
  fi
  for d in "$db" "$db2"; do
    psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
rate() { printf '%.0f' "$(echo "$1 / $2" | bc -l)"; }
# Unsigned JSON-protocol SQS call $1 with body $2 to endpoint $3.
sqs() {
  curl -fsS -X POST "$3/" -H "X-Amz-Target: AmazonSQS.$1" \
    -H 'Content-Type: application/x-amz-json-1.0' -d "$2"
}
remaining() {
  "$bin" status --format json 2>/dev/null | python3 -c \
    'import json, sys; d = json.load(sys.stdin)["queue"]["depth"]; print(d["visible"] + d["in_flight"])'
}
set_visibility() {
  local url
  url=$("$bin" status --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["queue"]["url"])')
  sqs SetQueueAttributes "{\"QueueUrl\":\"$url\",\"Attributes\":{\"VisibilityTimeout\":\"$visibility\"}}" "$1" >/dev/null
}

start() {  # start SLOT [run options…]
  local i=$1
  shift
  runs[$i]=$(( ${runs[$i]:-0} + 1 ))
  LOGIN_ETL_LOG=warn /usr/bin/time -f '%M' -o "$work/rss-$i-${runs[$i]}" "$bin" run "$@" \
    >>"$work/consumer-$i.log" 2>&1 &
  slot[$i]=$!
}
peak_rss() {  # the most any process of slot $1 used, in MiB
  tail -q -n 1 "$work"/rss-"$1"-* 2>/dev/null | awk '$1 ~ /^[0-9]+$/ && $1 > m { m = $1 } END { printf "%.0f", m / 1024 }'
}
failures=0
collect() {  # wait for slot $1; anything but exit 0 is a failure (after a SIGKILL, call with "killed")
  local code=0
  wait "${slot[$1]}" 2>/dev/null || code=$?
  if [ "${2:-}" != killed ] && [ "$code" -ne 0 ]; then
    echo "consumer slot $1 exited with status $code:" >&2
    tail -n 5 "$work/consumer-$1.log" >&2
    failures=$((failures + 1))
  fi
}

if [ "$mode" = big ]; then
  logins=${2:-3300000}
  scratch_run "$db" "$queue"
  "$python" "$helper" big "$localstack" "$bucket" "$logins" "$work/spec.json"
  "$bin" migrate >/dev/null 2> >(grep -v ' INFO ' >&2)
  "$bin" backfill "s3://$bucket/big/" | sed 's/ on .*//'
  begin=$(now)
  start 1 --drain
  collect 1
  elapsed=$(echo "$(now) - $begin" | bc)
  [ "$(remaining)" = 0 ] || { echo "the queue is not empty after the drain" >&2; failures=$((failures + 1)); }
  exact=0
  "$python" "$helper" check "$LOGIN_ETL_DATABASE_URL" "$work/spec.json" "$localstack" || exact=$?
  echo "the consumer's log (warnings and its summary):"
  sed 's/^/  /' "$work/consumer-1.log"
  landed=$(psql -X -qAt -h 127.0.0.1 -U postgres -d "$db" -c \
    "SELECT (SELECT count(*) FROM user_logins) + (SELECT count(*) FROM quarantined_messages)")
  printf 'one object of %s logins, one consumer: %s landed, %s logins/s (%.1f s), peak RSS %s MiB\n' \
    "$logins" "$landed" "$(rate "$landed" "$elapsed")" "$elapsed" "$(peak_rss 1)"
  [ "$exact" = 0 ] && [ "$failures" = 0 ]
  exit
fi

# --- 1. the S3 path: 40 objects, CONSUMERS consumers, SIGKILLs ----------------------------------
scratch_run "$db" "$queue"
"$bin" migrate >/dev/null 2> >(grep -v ' INFO ' >&2)
set_visibility "$localstack"
"$python" "$helper" objects "$localstack" "$bucket" "$work/spec.json"
total=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["logins"])' "$work/spec.json")
twice=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["objects"][7]["key"])' "$work/spec.json")
"$bin" backfill "s3://$bucket/history/" | sed 's/ on .*//'
"$bin" backfill "s3://$bucket/$twice" | sed 's/ on .*//'   # its notification a second time
begin=$(now)
for i in $(seq 1 "$consumers"); do start "$i" --drain; done
kills=0
while [ "$(echo "$(now) - $begin < $kill_for" | bc)" = 1 ]; do
  sleep "$kill_every"
  [ "$(remaining)" = 0 ] && break
  # A consumer that drained meanwhile (while the rest of the queue was held by the others) is
  # started again: CONSUMERS run throughout the kills.
  for i in $(seq 1 "$consumers"); do
    if [ -z "$(child "$i")" ]; then collect "$i"; start "$i" --drain; fi
  done
  sleep 0.2   # (a slot just started has its login-etl by now)
  i=$(( RANDOM % consumers + 1 ))
  victim=$(child "$i")
  [ -n "$victim" ] || continue
  kill -KILL "$victim" 2>/dev/null || true
  collect "$i" killed
  kills=$((kills + 1))
  start "$i" --drain
done
kill_phase=$(echo "$(now) - $begin" | bc)
# No more kills: every consumer drains and exits. What a killed one held comes back after
# VISIBILITY seconds; if a drain ended before that, every slot drains again.
for i in $(seq 1 "$consumers"); do collect "$i"; done
rounds=1
while [ "$(remaining)" != 0 ]; do
  rounds=$((rounds + 1))
  [ "$rounds" -le 20 ] || { echo "the queue is still not empty after 20 rounds of drains" >&2; failures=$((failures + 1)); break; }
  for i in $(seq 1 "$consumers"); do start "$i" --drain; done
  for i in $(seq 1 "$consumers"); do collect "$i"; done
done
s3_elapsed=$(echo "$(now) - $begin" | bc)
s3_exact=0
"$python" "$helper" check "$LOGIN_ETL_DATABASE_URL" "$work/spec.json" "$localstack" || s3_exact=$?
skipped=$(cat "$work"/consumer-*.log | sed -n 's/.*duplicates skipped \([0-9]*\).*/\1/p' | awk '{ n += $1 } END { print n + 0 }')
s3_rss=$(for i in $(seq 1 "$consumers"); do printf '%s ' "$(peak_rss "$i")"; done)
s3_runs=$(for i in $(seq 1 "$consumers"); do printf '%s ' "${runs[$i]}"; done)

# --- 2. the same logins, one message each, through the SQS stand-in ------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$target_dir/release/examples/sqs-stand-in" "127.0.0.1:$port" 2>"$work/stand-in.log" &
stand_in=$!
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
fresh_database "$db2"
export LOGIN_ETL_SQS_ENDPOINT=http://127.0.0.1:$port LOGIN_ETL_SQS_PROTOCOL=json AWS_ENDPOINT_URL_S3=$localstack
export LOGIN_ETL_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db2
sqs CreateQueue "{\"QueueName\":\"$queue\"}" "$LOGIN_ETL_SQS_ENDPOINT" >/dev/null
"$bin" migrate >/dev/null 2> >(grep -v ' INFO ' >&2)
set_visibility "$LOGIN_ETL_SQS_ENDPOINT"
url=$("$bin" status --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["queue"]["url"])')
"$python" "$helper" send "$LOGIN_ETL_SQS_ENDPOINT" "$url" "$work/spec.json"
rm -f "$work"/rss-*
runs=()
begin=$(now)
for i in $(seq 1 "$consumers"); do start "$i" --drain; done
for i in $(seq 1 "$consumers"); do collect "$i"; done
msg_elapsed=$(echo "$(now) - $begin" | bc)
[ "$(remaining)" = 0 ] || { echo "the stand-in's queue ($url) is not empty after the drain" >&2; failures=$((failures + 1)); }
msg_exact=0
"$python" "$helper" check "$LOGIN_ETL_DATABASE_URL" "$work/spec.json" || msg_exact=$?
msg_rss=$(for i in $(seq 1 "$consumers"); do printf '%s ' "$(peak_rss "$i")"; done)

echo
printf 'S3 path: %s logins in 40 objects (one notified twice), %s consumers, %s SIGKILLs over %.0f s (one every %s s)\n' \
  "$total" "$consumers" "$kills" "$kill_phase" "$kill_every"
printf '         %s logins/s overall (%.1f s until the queue was empty; %s round(s) of drains)\n' \
  "$(rate "$total" "$s3_elapsed")" "$s3_elapsed" "$rounds"
printf '         peak RSS per consumer slot (MiB): %s(processes per slot: %s)\n' "$s3_rss" "$s3_runs"
printf '         duplicates skipped by the consumers that exited cleanly: %s\n' "$skipped"
printf 'message path (SQS stand-in, one login per message, no kills): %s logins/s (%.1f s), peak RSS per consumer (MiB): %s\n' \
  "$(rate "$total" "$msg_elapsed")" "$msg_elapsed" "$msg_rss"
printf 'S3 / message path: %.2f\n' "$(echo "$msg_elapsed / $s3_elapsed" | bc -l)"
echo "consumers that failed: $failures"
[ "$s3_exact" = 0 ] && [ "$msg_exact" = 0 ] && [ "$failures" = 0 ]
