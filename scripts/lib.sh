# Shared by the scripts in this folder: `source "$(dirname "$0")/lib.sh"` after `set -euo pipefail`.
# Sets $root (the checkout) and cds there; say/die print with the calling script's name.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# Local runs never need EC2 instance metadata; don't let the AWS SDK go looking for it.
export AWS_EC2_METADATA_DISABLED=true
script_name=$(basename "$0" .sh)
stack_dir=${LOGIN_ETL_STACK_DIR:-$root/.stack}
# Where cargo puts what it builds (CARGO_TARGET_DIR when set, relative to the checkout).
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")

say() { printf '[%s] %s\n' "$script_name" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$script_name" "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# apt-get install the packages given, updating the package lists once if the first try fails.
apt_install() {
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null 2>&1 \
    || { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null; }
}

# The newest python3.<minor> on this machine: pyenv's (wherever PYENV_ROOT or `pyenv root` says
# it is), else one on PATH. Prints nothing when there is none.
python_for() {
  local minor=$1 pyenv_root found
  pyenv_root=${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}
  found=$(ls -d "$pyenv_root"/versions/3."$minor".*/bin/python 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$found" ] || found=$(command -v "python3.$minor" || true)
  printf '%s' "$found"
}

# Build venv $1 with python $2 from lock file $3 (every line pinned with its hashes, installed with
# --require-hashes), unless the venv was built from that very lock file already. Extra arguments
# are requirement files (hashed too) installed first without build isolation: build tools, and
# old sdists that build only with them.
install_venv() {
  local venv=$1 python=$2 lock=$3
  shift 3
  cmp -s "$lock" "$venv/.installed-lock" 2>/dev/null && return
  say "installing $(basename "$lock") into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  local pip=("$venv/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps)
  for pre in "$@"; do "${pip[@]}" --no-build-isolation -r "$pre"; done
  "${pip[@]}" -r "$lock"
  cp "$lock" "$venv/.installed-lock"
}

# The validators' venv (PyYAML, jsonschema, cfn-lint; scripts/validators.lock), built if missing
# or stale, so any script can use it without validate-deploy.sh having run. Prints its bin folder.
validators_bin() {
  local venv=$stack_dir/validators-venv python
  python=$(python_for 11)
  [ -n "$python" ] || python=$(command -v python3 || true)
  [ -n "$python" ] || die "python3 is required for the validators (apt-get install python3-venv)"
  mkdir -p "$stack_dir"
  install_venv "$venv" "$python" "$root/scripts/validators.lock" >&2
  printf '%s' "$venv/bin"
}

# A new, empty database $1 on the local server (dropped first if it exists).
fresh_database() {
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d postgres \
    -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
}

# A random 256-bit masking key (hex), for throwaway runs.
random_key() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }

# A throwaway run against the local stack: a fresh database $1, queue $2 on LocalStack, a random
# key; exported for the login-etl commands that follow, and the queue created (empty).
scratch_run() {
  fresh_database "$1"
  export LOGIN_ETL_SQS_ENDPOINT=http://127.0.0.1:4566 LOGIN_ETL_QUEUE_NAME=$2
  export LOGIN_ETL_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$1
  LOGIN_ETL_MASK_KEY=$(random_key)
  export LOGIN_ETL_MASK_KEY
  "$target_dir/release/login-etl" send-sample --create-queue --count 0 >/dev/null
  "$target_dir/release/login-etl" purge-queue --yes >/dev/null || true   # leftovers of an interrupted run
}
