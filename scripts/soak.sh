#!/usr/bin/env bash
# Soak: N generated messages (0.1 % bad) on a queue with a short visibility timeout, C consumers
# (`run`), one of them SIGKILLed and restarted every K seconds (K = 0: none) until the queue is
# empty or the duration is spent; then the rest are stopped with SIGTERM and whatever the killed
# one held is drained. Prints the books (rows, quarantine by reason, ledger, duplicates skipped,
# what is left) and, every 10 s (--sample-every), each consumer's RSS and the CPU per message of
# the interval, so a leak or a cost that grows with time shows.
# Fails (exit 1) unless the books are exact: rows = valid messages, quarantine = bad messages (none
# as too_many_receives), one ledger id per message, the queue empty, and every consumer ended as
# it was made to (SIGKILL: 137; SIGTERM: 0): a consumer that crashed or exited non-zero is named.
# Usage: scripts/soak.sh [--messages N] [--kill-every SECONDS] [--duration SECONDS]
#                        [--consumers C] [--visibility SECONDS] [--max-receives M] [--stand-in]
#                        [--sample-every SECONDS]
#   --stand-in   drain the in-memory SQS stand-in (examples/sqs-stand-in.rs) instead of
#                LocalStack: for the rate and cost of login-etl itself at a depth LocalStack
#                would take an hour to fill (scripts/soak.sh --stand-in --messages 1000000
#                --consumers 4 --kill-every 0 --visibility 30)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
messages=100000 kill_every=1 duration=600 consumers=3 visibility=2 max_receives=5 sample_every=10
endpoint=http://127.0.0.1:4566
while [ $# -gt 0 ]; do
  case "$1" in
    --stand-in) endpoint=http://127.0.0.1:4599; shift; continue ;;
    --messages) messages=$2 ;;
    --kill-every) kill_every=$2 ;;
    --duration) duration=$2 ;;
    --consumers) consumers=$2 ;;
    --visibility) visibility=$2 ;;
    --max-receives) max_receives=$2 ;;
    --sample-every) sample_every=$2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift 2
done

cargo build --release --locked --quiet --bin login-etl --example sqs-stand-in
bin=$target_dir/release/login-etl
db=login_etl_soak queue=login-etl-soak
work=$(mktemp -d)
pids=()
# Whatever happens (a failure, Ctrl-C), no consumer is left running and no scratch files stay.
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
if [ "$endpoint" = http://127.0.0.1:4566 ]; then
  scripts/stack-up.sh
else
  "$target_dir/release/examples/sqs-stand-in" 127.0.0.1:4599 2>"$work/stand-in.log" &
  pids+=($!)
  sleep 0.5
fi
psql_db() { psql -X -qAt -h 127.0.0.1 -U postgres -d "$db" -c "$1"; }
fresh_database "$db"
export LOGIN_ETL_SQS_ENDPOINT=$endpoint LOGIN_ETL_QUEUE_NAME=$queue
export LOGIN_ETL_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db
LOGIN_ETL_MASK_KEY=$(random_key)
export LOGIN_ETL_MASK_KEY
export LOGIN_ETL_MAX_RECEIVES=$max_receives LOGIN_ETL_WAIT_TIME_SECONDS=1 LOGIN_ETL_BATCH_SIZE=200

# LocalStack (and the stand-in) take unsigned JSON-protocol calls: create the queue with the short
# visibility timeout.
sqs() {
  curl -fsS -X POST "$endpoint/" -H "X-Amz-Target: AmazonSQS.$1" \
    -H 'Content-Type: application/x-amz-json-1.0' -d "$2" >/dev/null
}
"$bin" migrate >/dev/null
sqs CreateQueue "{\"QueueName\":\"$queue\"}"
url=$("$bin" status --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["queue"]["url"])')
sqs SetQueueAttributes "{\"QueueUrl\":\"$url\",\"Attributes\":{\"VisibilityTimeout\":\"$visibility\"}}"
"$bin" purge-queue --yes >/dev/null || true
sleep 1
echo "queueing $messages messages (0.1 % bad)..."
"$bin" send-sample --count "$messages" --bad-share 0.001 --seed 99
# The generator makes exactly round(N × share) bad messages, every one of them invalid.
bad=$(( (messages + 500) / 1000 ))

# Started in this shell (not in a command substitution) so that `wait` can collect them.
start() { LOGIN_ETL_LOG=warn "$bin" run >>"$work/consumer-$1.log" 2>&1 & consumer[$1]=$!; pids+=($!); }
declare -a consumer
consumer_failures=0
# Collect consumer $1, which was sent signal $2: it must have died of it (SIGKILL) or exited 0
# (SIGTERM); anything else (it had crashed, or failed to stop) is a failure, shown with its log.
collect() {
  local code=0 expected=0
  [ "$2" = KILL ] && expected=137
  wait "${consumer[$1]}" 2>/dev/null || code=$?
  if [ "$code" -ne "$expected" ]; then
    echo "consumer $1 exited with status $code (expected $expected after SIG$2):" >&2
    tail -n 3 "$work/consumer-$1.log" >&2
    consumer_failures=$((consumer_failures + 1))
  fi
}
for i in $(seq 1 "$consumers"); do start "$i"; done
started=$(date +%s) kills=0
remaining() {
  "$bin" status --format json 2>/dev/null | python3 -c \
    'import json, sys; d = json.load(sys.stdin)["queue"]["depth"]; print(d["visible"] + d["in_flight"])'
}
# Every --sample-every seconds: messages done (the ledger), each consumer's CPU seconds and RSS (from /proc).
sample() {
  local line
  line="$(( $(date +%s) - started )) $(psql_db "SELECT count(*) FROM processed_messages")"
  for i in $(seq 1 "$consumers"); do
    line+=" $(awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/${consumer[$i]}/stat" 2>/dev/null || echo 0)"
    line+=" $(awk '/^VmRSS/ { print $2 }' "/proc/${consumer[$i]}/status" 2>/dev/null || echo 0)"
  done
  echo "$line" >>"$work/samples"
}
next_kill=$((started + kill_every)) next_sample=$started
while [ $(( $(date +%s) - started )) -lt "$duration" ] && [ "$(remaining)" != 0 ]; do
  sleep 1
  now=$(date +%s)
  if [ "$now" -ge "$next_sample" ]; then sample; next_sample=$((now + sample_every)); fi
  if [ "$kill_every" -gt 0 ] && [ "$now" -ge "$next_kill" ]; then
    kill -9 "${consumer[1]}" 2>/dev/null || true
    collect 1 KILL
    kills=$((kills + 1)) next_kill=$((now + kill_every))
    start 1
  fi
done
sample
chaos=$(( $(date +%s) - started ))
first=1
if [ "$kill_every" -gt 0 ]; then
  kill -9 "${consumer[1]}" 2>/dev/null || true
  collect 1 KILL
  first=2
fi
for i in $(seq "$first" "$consumers"); do kill -TERM "${consumer[$i]}" 2>/dev/null || true; done
for i in $(seq "$first" "$consumers"); do collect "$i" TERM; done
python3 "$root/scripts/soak-samples.py" "$work/samples" "$consumers"
duplicates=$(cat "$work"/consumer-*.log | sed -n 's/.*duplicates skipped \([0-9]*\).*/\1/p' | awk '{ n += $1 } END { print n + 0 }')
for _ in $(seq 1 10); do
  [ "$(remaining)" = 0 ] && break
  sleep "$visibility"
  LOGIN_ETL_LOG=warn "$bin" run --drain >/dev/null
done

rows=$(psql_db "SELECT count(*) FROM user_logins")
ledger=$(psql_db "SELECT count(*) FROM processed_messages")
reasons=$(psql_db "SELECT coalesce(string_agg(reason_code || ': ' || n, ', '), 'none') FROM (SELECT reason_code, count(*) n FROM quarantined_messages GROUP BY 1 ORDER BY 1) q")
poison=$(psql_db "SELECT count(*) FROM quarantined_messages WHERE reason_code = 'too_many_receives'")
quarantined=$(psql_db "SELECT count(*) FROM quarantined_messages")
left=$(remaining)
echo "soak: $messages messages ($bad bad), $consumers consumers, visibility ${visibility}s, --max-receives $max_receives"
echo "      $kills SIGKILLs over ${chaos}s (one every ${kill_every}s; 0 = none), against $endpoint"
echo "      duplicates skipped by the consumers stopped with SIGTERM: $duplicates"
echo "rows $rows (expected $((messages - bad))), quarantined $quarantined: $reasons (expected $bad), ledger $ledger (expected $messages), queue left ${left:-unknown} (expected 0)"
echo "consumers that did not end as made to: $consumer_failures"
if [ "$rows" = $((messages - bad)) ] && [ "$quarantined" = "$bad" ] && [ "$ledger" = "$messages" ] \
   && [ "$poison" = 0 ] && [ "$left" = 0 ] && [ "$consumer_failures" = 0 ]; then
  echo "exact: every valid login is a row, every bad one quarantined once, no valid login quarantined as too_many_receives, the queue empty, every consumer ended cleanly"
else
  echo "NOT EXACT" >&2
  exit 1
fi
