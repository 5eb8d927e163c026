#!/usr/bin/env bash
# A local Prometheus with login-etl's alert rules, scraping a consumer that runs with
# --metrics-addr, for trying the rules and queries of deploy/observability on one machine.
# Usage: scripts/observe.sh [METRICS_ADDR]   (default 127.0.0.1:9464; Prometheus on 127.0.0.1:9090)
# Stop it with Ctrl-C; its data lives in .stack/prometheus (deleted at each start).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
target=${1:-127.0.0.1:9464}
listen=${LOGIN_ETL_PROMETHEUS_ADDR:-127.0.0.1:9090}
command -v prometheus >/dev/null || { say "installing prometheus"; apt_install prometheus; }
dir=$stack_dir/prometheus
rm -rf "$dir" && mkdir -p "$dir/data"
cat >"$dir/prometheus.yml" <<YAML
global: {scrape_interval: ${LOGIN_ETL_SCRAPE_INTERVAL:-5s}, evaluation_interval: ${LOGIN_ETL_SCRAPE_INTERVAL:-5s}}
rule_files: [$root/deploy/observability/alerts.yml]
scrape_configs:
  - job_name: login-etl
    static_configs: [{targets: ['$target']}]
YAML
promtool check config "$dir/prometheus.yml" >/dev/null
say "Prometheus on http://$listen scraping $target"
say "  throughput: http://$listen/classic/graph?g0.expr=sum(rate(login_etl_rows_written_total%5B1m%5D))&g0.tab=0&g0.range_input=15m"
say "  alerts:     http://$listen/alerts"
exec prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
  --web.listen-address="$listen"
