#!/usr/bin/env bash
# A picture of the real thing for docs/operations.md: Prometheus (scripts/observe.sh, 1 s scrapes)
# graphs login-etl's throughput while `run` drains N generated messages (default 20000), and
# headless Chromium saves the graph page to docs/img/prometheus-throughput.png.
# Usage: scripts/observe-screenshot.sh [N]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
count=${1:-20000}
command -v chromium >/dev/null || { say "installing chromium"; apt_install chromium; }
scripts/stack-up.sh
cargo build --release --locked --quiet
bin=$target_dir/release/login-etl
db=login_etl_observe
scratch_run "$db" login-etl-observe
metrics=127.0.0.1:9465 prom=127.0.0.1:9391
"$bin" send-sample --count "$count" --bad-share 0.02 --seed 3 >/dev/null
LOGIN_ETL_PROMETHEUS_ADDR=$prom LOGIN_ETL_SCRAPE_INTERVAL=1s scripts/observe.sh "$metrics" >/dev/null 2>&1 &
observer=$!
consumer=
trap 'kill $observer ${consumer:-} 2>/dev/null || true' EXIT
# Keep serving metrics after the drain, so the last scrapes see the totals.
LOGIN_ETL_METRICS_ADDR=$metrics "$bin" run --wait-time-seconds 1 2>/dev/null &
consumer=$!
sleep 20
expr='sum(rate(login_etl_rows_written_total[5s]))'
url="http://$prom/classic/graph?g0.expr=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$expr")&g0.tab=0&g0.range_input=2m"
mkdir -p docs/img
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,720 \
  --virtual-time-budget=5000 --screenshot="$root/docs/img/prometheus-throughput.png" "$url" 2>/dev/null
say "saved docs/img/prometheus-throughput.png ($url)"
psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
