#!/usr/bin/env bash
# Bring up two SQS emulators that speak only the older query protocol, stand-ins for the
# take-home's docker-compose LocalStack (no Docker needed):
#   LocalStack 1.4.0 in host mode on 127.0.0.1:4567  (answers JSON requests with HTTP 500
#                                                      "Missing Action", like the take-home image)
#   moto 4.1.10 server on 127.0.0.1:4568              (answers JSON requests with 200 and XML)
# Installs from the lock files in scripts/query-sqs/, starts what is stopped, leaves alone what
# already runs: safe to run twice. Used by scripts/test.sh for the query-protocol tests.
#
# Environment (all optional):
#   LOGIN_ETL_STACK_DIR  where the venvs, state and logs live (default ./.stack)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

locks=$root/scripts/query-sqs
ls_port=4567
moto_port=4568
mkdir -p "$stack_dir"

listening() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/"; }

start_localstack_1_4() {
  if curl -fs --max-time 2 "http://127.0.0.1:$ls_port/_localstack/health" | grep -q '"sqs"'; then
    say "LocalStack 1.4 (query-protocol SQS) is running on 127.0.0.1:$ls_port"
    return
  fi
  listening "$ls_port" && die "something else answers on 127.0.0.1:$ls_port; stop it"
  local python
  python=$(python_for 10)
  [ -n "$python" ] || die "LocalStack 1.4 needs Python 3.10 (pyenv install 3.10, or apt-get install python3.10-venv)"
  # The sasl package in LocalStack 1.4's runtime extra compiles against Cyrus SASL.
  if [ ! -f /usr/include/sasl/sasl.h ]; then
    say "installing libsasl2-dev (needed to build LocalStack 1.4's sasl dependency)"
    apt_install libsasl2-dev
  fi
  # PyYAML 5.4.1 builds only with Cython < 3 and without build isolation: the build tools first,
  # then PyYAML (its hashed entry taken from the lock), then the rest.
  local pyyaml=$stack_dir/ls14-pyyaml.req
  awk 'tolower($0) ~ /^pyyaml==/ { on = 1 } on { print } on && !/\\$/ { on = 0 }' \
    "$locks/localstack-1.4.lock" >"$pyyaml"
  install_venv "$stack_dir/ls14-venv" "$python" "$locks/localstack-1.4.lock" \
    "$locks/localstack-1.4-build.lock" "$pyyaml"
  local state=$stack_dir/ls14
  mkdir -p "$state/home" "$state/tmp" "$state/volume"
  say "starting LocalStack 1.4 (host mode, SQS only) on 127.0.0.1:$ls_port"
  (
    cd "$state"
    HOME=$state/home TMPDIR=$state/tmp LOCALSTACK_VOLUME_DIR=$state/volume \
      EDGE_PORT=$ls_port EDGE_BIND_HOST=127.0.0.1 SERVICES=sqs DNS_ADDRESS=0 DISABLE_EVENTS=1 \
      SKIP_SSL_CERT_DOWNLOAD=1 SKIP_INFRA_DOWNLOADS=1 \
      nohup setsid "$stack_dir/ls14-venv/bin/localstack" start --host >"$state/localstack.log" 2>&1 &
    echo $! >"$state/localstack.pid"
  )
  for _ in $(seq 1 60); do grep -q '^Ready\.' "$state/localstack.log" 2>/dev/null && break; sleep 1; done
  grep -q '^Ready\.' "$state/localstack.log" \
    || die "LocalStack 1.4 did not start within 60 s; see $state/localstack.log"
  say "LocalStack 1.4 (query-protocol SQS) is running on 127.0.0.1:$ls_port"
}

start_moto() {
  if curl -fs --max-time 2 -o /dev/null "http://127.0.0.1:$moto_port/moto-api/"; then
    say "moto 4.1.10 (query-protocol SQS) is running on 127.0.0.1:$moto_port"
    return
  fi
  listening "$moto_port" && die "something else answers on 127.0.0.1:$moto_port; stop it"
  local python
  python=$(python_for 11)
  [ -n "$python" ] || python=$(command -v python3 || true)
  [ -n "$python" ] || die "moto needs Python 3 (apt-get install python3-venv)"
  install_venv "$stack_dir/moto-venv" "$python" "$locks/moto-4.1.10.lock"
  say "starting moto 4.1.10 server on 127.0.0.1:$moto_port"
  (
    nohup setsid "$stack_dir/moto-venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" \
      >"$stack_dir/moto.log" 2>&1 &
    echo $! >"$stack_dir/moto.pid"
  )
  for _ in $(seq 1 30); do curl -fs --max-time 2 -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" && break; sleep 1; done
  curl -fs --max-time 2 -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" \
    || die "moto did not start within 30 s; see $stack_dir/moto.log"
  say "moto 4.1.10 (query-protocol SQS) is running on 127.0.0.1:$moto_port"
}

command -v curl >/dev/null || apt_install curl
start_localstack_1_4
start_moto
