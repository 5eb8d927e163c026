#!/usr/bin/env bash
# The .deb, built and used as an operator would: cargo-deb builds it (man pages and completions
# generated first by examples/generate.rs), dpkg installs it on this machine, systemd-analyze
# verifies the unit, and the unit's ExecStart runs as the unit would run it (systemd is not
# running here): as a throwaway user like DynamicUser's, with only the settings of
# /etc/default/login-etl, umask 077, no new privileges. It drains the sample (99 rows, 1
# quarantined); then the package is purged and nothing of it stays. Prints the .deb's size and
# the time taken. Part of scripts/test.sh (full runs; LOGIN_ETL_SKIP_DEB_TEST=1 leaves it out).
# Where it cannot run (not a Debian system, no root and no passwordless sudo, its tools cannot be
# installed), it prints one `skipped: <reason>` line and exits 77 (scripts/test.sh puts the skip
# in its summary); under CI=true that is a failure instead. A step it leaves out while the rest
# runs (systemd-analyze missing) is a `skipped:` line too, which scripts/test.sh also reports.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
started=$(date +%s)

# Not able to test the package: under CI a failure, elsewhere one skip line (exit 77).
cannot_test() {
  [ "${CI:-}" != true ] || die "$1 (CI=true: the .deb test cannot be skipped)"
  say "skipped: $1"
  exit 77
}
command -v dpkg >/dev/null || cannot_test "not a Debian system (no dpkg)"
[ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null \
  || cannot_test "installing a package needs root or passwordless sudo"
command -v cargo-deb >/dev/null || { say "installing cargo-deb"; cargo install cargo-deb --locked \
  || cannot_test "cargo-deb could not be installed"; }
command -v dpkg-shlibdeps >/dev/null || { say "installing dpkg-dev"; apt_install dpkg-dev \
  || cannot_test "dpkg-dev (dpkg-shlibdeps, for cargo deb) could not be installed"; }
command -v systemd-analyze >/dev/null || { say "installing systemd (for systemd-analyze)"; apt_install systemd || true; }
command -v setpriv >/dev/null || apt_install util-linux || cannot_test "util-linux (setpriv) could not be installed"
command -v man >/dev/null || apt_install man-db || cannot_test "man-db could not be installed"
scripts/stack-up.sh >/dev/null

say "building the .deb"
cargo build --release --locked --quiet --bin login-etl --example generate
"$target_dir/release/examples/generate" "$target_dir/release/generated" >/dev/null
deb=$(cargo deb --no-build --locked 2>/dev/null | tail -n 1)
[ -f "$deb" ] || die "cargo deb made no package"
size=$(stat -c %s "$deb")

unit=/lib/systemd/system/login-etl.service settings=/etc/default/login-etl
db=login_etl_deb queue=login-etl-deb
trap 'as_root dpkg --purge login-etl >/dev/null 2>&1 || true' EXIT
as_root dpkg --purge login-etl >/dev/null 2>&1 || true   # leftovers of an interrupted run
as_root dpkg -i "$deb" >/dev/null
say "ok    installed $(dpkg-query -W -f '${Package} ${Version}' login-etl)"

# What it installed: the unit, the settings (root's only), man pages, completions.
[ "$(stat -c '%a %U' "$settings")" = "640 root" ] || die "$settings is not 0640 root"
man -w login-etl >/dev/null && man -w login-etl-run >/dev/null || die "the man pages are not installed"
bash -c 'source /usr/share/bash-completion/completions/login-etl && complete -p login-etl' >/dev/null \
  || die "the bash completion does not load"
[ -f /usr/share/zsh/vendor-completions/_login-etl ] && [ -f /usr/share/fish/vendor_completions.d/login-etl.fish ] \
  || die "the zsh/fish completions are not installed"
say "ok    unit, settings (0640 root), man pages, bash/zsh/fish completions"
if command -v systemd-analyze >/dev/null; then
  verified=$(systemd-analyze verify "$unit" 2>&1) || die "systemd-analyze verify: $verified"
  say "ok    systemd-analyze verify ${verified:+(said: $verified)}"
else
  say "skipped: systemd-analyze verify (no systemd-analyze on this machine)"
fi

# The settings an operator writes, for the local stack (LocalStack takes any credentials).
fresh_database "$db"
as_root tee -a "$settings" >/dev/null <<EOF_SETTINGS
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
LOGIN_ETL_SQS_ENDPOINT=http://127.0.0.1:4566
LOGIN_ETL_QUEUE_NAME=$queue
LOGIN_ETL_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db
LOGIN_ETL_MASK_KEY=deb:$(random_key)
EOF_SETTINGS

# As the unit runs it: a user of its own (DynamicUser's range), root reads the settings file (as
# systemd does), the process gets nothing else of this shell's environment.
uid=$((61184 + RANDOM % 4000))
environment=(PATH=/usr/bin:/bin)
while IFS= read -r line; do
  case "$line" in ''|'#'*) ;; *) environment+=("$line") ;; esac
done < <(as_root cat "$settings")
read -r -a exec_start < <(sed -n 's/^ExecStart=//p' "$unit")
as_unit() {
  (cd / && umask 077 && as_root env -i "${environment[@]}" \
    setpriv --reuid="$uid" --regid="$uid" --clear-groups --no-new-privs "$@")
}
as_unit "${exec_start[0]}" purge-queue --yes >/dev/null 2>&1 || true
as_unit "${exec_start[0]}" send-sample --create-queue >/dev/null
as_unit "${exec_start[@]}" --drain >/dev/null 2>&1 || die "the unit's ExecStart failed"
count() { psql -X -tA -h 127.0.0.1 -U postgres -d "$db" -c "SELECT count(*) FROM $1"; }
rows=$(count user_logins) quarantined=$(count quarantined_messages)
[ "$rows/$quarantined" = 99/1 ] || die "drained $rows rows and $quarantined quarantined, expected 99 and 1"
say "ok    ExecStart as uid $uid with $settings drained the sample: 99 rows, 1 quarantined"

as_root dpkg --purge login-etl >/dev/null
for path in /usr/bin/login-etl "$unit" "$settings" /usr/share/man/man1/login-etl.1*; do
  [ ! -e "$path" ] || die "$path is still there after dpkg --purge"
done
say "ok    purged: nothing of it stays"
say "the .deb: $(basename "$deb"), $((size / 1024)) KiB; this test took $(($(date +%s) - started)) s"
