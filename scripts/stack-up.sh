#!/usr/bin/env bash
# Bring up the local stack: PostgreSQL on 127.0.0.1:5432 and LocalStack (SQS, KMS, and
# CloudFormation for the deployment test) on 127.0.0.1:4566.
# Installs what is missing, starts what is stopped, leaves alone what already runs: safe to run twice.
#
# Environment (all optional):
#   LOGIN_ETL_LOCALSTACK_PORT  LocalStack port (default 4566)
#   LOGIN_ETL_STACK_DIR        where the LocalStack venv, logs and pid files live (default ./.stack)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ls_port=${LOGIN_ETL_LOCALSTACK_PORT:-4566}
mkdir -p "$stack_dir"

# --- PostgreSQL -------------------------------------------------------------------------------
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_up; then
    say "PostgreSQL is running on 127.0.0.1:5432"
    return
  fi
  local fresh_install=0
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    say "PostgreSQL is not installed: installing it with apt-get"
    apt_install postgresql
    fresh_install=1
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ "$fresh_install" = 1 ]; then
    # Debian's default asks for a password on TCP; this dev cluster trusts local connections,
    # like the machines this project is developed on.
    local hba=/etc/postgresql/$version/main/pg_hba.conf
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  say "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || die "PostgreSQL did not come up on 127.0.0.1:5432 (see /var/log/postgresql/)"
  say "PostgreSQL is running on 127.0.0.1:5432"
}

# --- LocalStack -------------------------------------------------------------------------------
ls_health() { curl -fs "http://127.0.0.1:$ls_port/_localstack/health" 2>/dev/null; }
ls_healthy() {
  local health
  health=$(ls_health) || return 1
  grep -Eq '"sqs": *"(available|running)"' <<<"$health" \
    && grep -Eq '"kms": *"(available|running)"' <<<"$health" \
    && grep -Eq '"cloudformation": *"(available|running)"' <<<"$health" \
    && grep -Eq '"s3": *"(available|running)"' <<<"$health"
}

# The pinned LocalStack venv: the emulator, and the AWS CLI the deployment test uses. Installed even
# when a LocalStack is already running (started from another checkout, or by hand).
ensure_localstack_venv() {
  local venv=$stack_dir/localstack-venv lock=$root/scripts/localstack-requirements.lock
  cmp -s "$lock" "$venv/.installed-lock" 2>/dev/null && return
  local python
  python=$(python_for 11)
  [ -n "$python" ] || python=$(command -v python3 || true)
  [ -n "$python" ] || die "python3.11 is required for LocalStack (apt-get install python3.11 python3.11-venv)"
  "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "LocalStack 4.10 with the pinned dependencies needs Python 3.11; found $("$python" --version)"
  install_venv "$venv" "$python" "$lock"
}

ensure_localstack() {
  if ls_healthy; then
    say "LocalStack SQS+KMS+CloudFormation+S3 is running on 127.0.0.1:$ls_port"
    return
  fi
  if ls_health >/dev/null && [ -f "$stack_dir/localstack.pid" ]; then
    say "restarting our LocalStack with SQS, KMS, CloudFormation and S3"
    kill "$(cat "$stack_dir/localstack.pid")" 2>/dev/null || true
    for _ in $(seq 1 30); do ls_health >/dev/null || break; sleep 1; done
  fi
  ls_health >/dev/null && die "something else answers on 127.0.0.1:$ls_port without SQS, KMS, CloudFormation and S3; stop it or set LOGIN_ETL_LOCALSTACK_PORT"
  local venv=$stack_dir/localstack-venv
  say "starting LocalStack (host mode, SQS, KMS, CloudFormation, S3) on 127.0.0.1:$ls_port"
  (
    cd "$stack_dir"
    GATEWAY_LISTEN=127.0.0.1:$ls_port LOCALSTACK_HOST=127.0.0.1:$ls_port SERVICES=sqs,kms,cloudformation,s3 \
      SQS_ENDPOINT_STRATEGY=path nohup setsid "$venv/bin/python" -m localstack.runtime.main \
      >"$stack_dir/localstack.log" 2>&1 &
    echo $! >"$stack_dir/localstack.pid"
  )
  for _ in $(seq 1 90); do ls_healthy && break; sleep 1; done
  ls_healthy || die "LocalStack did not report SQS, KMS, CloudFormation and S3 within 90 s; see $stack_dir/localstack.log"
  say "LocalStack SQS+KMS+CloudFormation+S3 is running on 127.0.0.1:$ls_port"
}

command -v curl >/dev/null || apt_install curl
ensure_postgres
# PgBouncer for the pooler test (tests/it/poolers.rs); started by the test on its own port.
[ -x /usr/sbin/pgbouncer ] || { say "installing PgBouncer (Debian's package)"; apt_install pgbouncer; }
ensure_localstack_venv
ensure_localstack
