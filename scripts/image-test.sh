#!/usr/bin/env bash
# Build the Dockerfile as it is with podman and run the image as a user would (issue: the image,
# built and run for real). No registry is reachable here, so the two base images the Dockerfile
# names are made locally and cached in podman's storage between runs:
#   debian:bookworm-slim         debootstrap --variant=minbase bookworm (an upper bound on size:
#                                the official slim image is smaller)
#   rust:1.95.0-slim-bookworm    that rootfs + gcc/libc6-dev + the host's Rust 1.95.0 toolchain laid
#                                out as the official image does (RUSTUP_HOME, CARGO_HOME, PATH) +
#                                the host's CA bundle (cargo must trust this network's proxy CA;
#                                never copied into the runtime image)
# Then: --pull=never build, and a run with --read-only, --cap-drop ALL, --user 10001,
# no-new-privileges and the key from an env file: the sample drains to 99 + 1, /healthz and
# /readyz answer from outside, the HEALTHCHECK turns healthy, `check` passes, logs are JSON,
# SIGTERM exits 0. Prints the image size, build times, binary size and start-to-ready time.
# Part of scripts/test.sh. Where podman cannot run, it prints one `skipped: <reason>` line and
# exits 77 (scripts/test.sh puts the skip in its summary); under CI=true a failed install or a
# podman that cannot run is a failure instead.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
toolchain=1.95.0-x86_64-unknown-linux-gnu
image=login-etl:test
port=9464   # the image's HEALTHCHECK asks 127.0.0.1:9464, and the container shares the host's network

# Not able to test the image: under CI a failure, elsewhere one skip line (exit 77).
cannot_test() {
  [ "${CI:-}" != true ] || die "$1 (CI=true: the image test cannot be skipped)"
  say "skipped: $1"
  exit 77
}
if ! { command -v podman >/dev/null && command -v debootstrap >/dev/null; }; then
  say "installing podman, runc, debootstrap"
  apt_install podman runc debootstrap || cannot_test "podman, runc and debootstrap could not be installed"
fi
conf=$stack_dir/containers.conf
mkdir -p "$stack_dir"
printf '[containers]\ndefault_ulimits = []\n' >"$conf"
export CONTAINERS_CONF=$conf
pm() { podman --runtime /usr/sbin/runc --cgroup-manager cgroupfs "$@"; }
command -v podman >/dev/null || cannot_test "podman is not installed"
pm info >/dev/null 2>&1 || cannot_test "podman cannot run on this machine ($(pm info 2>&1 | tail -n 1))"

# --- base images (cached; remade when this recipe's version changes) ---------------------------
recipe=2
current() { [ "$(pm image inspect --format '{{index .Labels "login-etl.base"}}' "$1" 2>/dev/null)" = "$recipe" ]; }
if ! current debian:bookworm-slim; then
  say "making debian:bookworm-slim with debootstrap (once; cached in podman's storage)"
  rootfs=$stack_dir/rootfs-bookworm
  as_root rm -rf "$rootfs"
  as_root debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  # Slim as the official image is: its apt settings (no caches, no translations, no docs) and
  # none of the documentation, manuals, locales or package caches debootstrap leaves.
  as_root sh -c "cd '$rootfs' \
    && printf '%s\n' 'DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true\"; };' \
         'Dir::Cache::pkgcache \"\"; Dir::Cache::srcpkgcache \"\";' >etc/apt/apt.conf.d/docker-clean \
    && printf 'Acquire::Languages \"none\";\n' >etc/apt/apt.conf.d/docker-no-languages \
    && printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' \
         'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/info/*' >etc/dpkg/dpkg.cfg.d/docker-slim \
    && rm -rf usr/share/doc/* usr/share/man/* usr/share/locale/* usr/share/info/* \
         var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/*"
  as_root tar -C "$rootfs" -c . | pm import --quiet --change 'CMD ["bash"]' \
    --change "LABEL login-etl.base=$recipe" - debian:bookworm-slim >/dev/null
  as_root rm -rf "$rootfs"
  pm image rm rust:1.95.0-slim-bookworm >/dev/null 2>&1 || true
fi
if ! current rust:1.95.0-slim-bookworm; then
  say "making rust:1.95.0-slim-bookworm from it and the host's toolchain (once; cached)"
  rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
  src=$(readlink -f "$rustup_home/toolchains/$toolchain")
  [ -x "$src/bin/cargo" ] || die "the Rust $toolchain toolchain is not installed (rustup toolchain install 1.95.0)"
  context=$stack_dir/rust-base
  rm -rf "$context" && mkdir -p "$context/toolchain"
  # The toolchain without its documentation (as the official slim image).
  tar -C "$src" --exclude=./share/doc -c . | tar -C "$context/toolchain" -x
  cp "$(command -v rustup)" "$context/rustup"
  cp /etc/ssl/certs/ca-certificates.crt "$context/host-ca-bundle.crt"
  cat >"$context/Containerfile" <<CONTAINERFILE
FROM debian:bookworm-slim
LABEL login-etl.base=$recipe
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \\
    && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY toolchain /usr/local/rustup/toolchains/$toolchain
COPY rustup /usr/local/cargo/bin/rustup
COPY host-ca-bundle.crt /etc/ssl/certs/ca-certificates.crt
RUN printf 'default_toolchain = "$toolchain"\nprofile = "minimal"\nversion = "12"\n' >/usr/local/rustup/settings.toml \\
    && for tool in cargo rustc rustdoc; do ln -s rustup /usr/local/cargo/bin/\$tool; done \\
    && cargo --version
CONTAINERFILE
  pm build --pull=never --network host -t rust:1.95.0-slim-bookworm "$context" >/dev/null
  rm -rf "$context"
  pm image prune -f >/dev/null   # the bases (and builds) of an older recipe
fi

# --- the image, from the Dockerfile as it is ----------------------------------------------------
say "building $image from the Dockerfile (--pull=never)"
started=$(date +%s)
commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
pm build --pull=never --format docker --network host --build-arg "GIT_COMMIT=$commit" -t "$image" "$root" >"$stack_dir/image-build.log" 2>&1 \
  || { tail -30 "$stack_dir/image-build.log" >&2; die "the image did not build"; }
build_seconds=$(( $(date +%s) - started ))
size=$(pm image inspect --format '{{.Size}}' "$image")
binary=$(pm run --rm --network none --entrypoint /usr/bin/stat "$image" -c %s /usr/local/bin/login-etl)
version=$(pm run --rm --network none "$image" --version)
[[ $version == *"(commit $commit)"* ]] || die "the image says \"$version\", not commit $commit"
say "ok    --version: $version"
say "built in ${build_seconds}s; image $((size / 1000000)) MB, binary $((binary / 1000000)) MB"

# --- run it as a user would -----------------------------------------------------------------------
scripts/stack-up.sh >/dev/null
db=login_etl_image
fresh_database "$db"
queue=login-etl-image
env_file=$stack_dir/image-test.env
umask 077
cat >"$env_file" <<ENV
LOGIN_ETL_SQS_ENDPOINT=http://127.0.0.1:4566
LOGIN_ETL_QUEUE_NAME=$queue
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
LOGIN_ETL_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db
LOGIN_ETL_MASK_KEY=$(random_key)
ENV
umask 022
# As deploy/kubernetes/deployment.yaml runs it: uid and gid 10001, read-only root, no capability.
# --health-interval=disable: no systemd timer here; `podman healthcheck run` runs the image's check.
secure=(--network host --read-only --cap-drop ALL --user 10001:10001 --security-opt no-new-privileges
        --health-interval=disable --env-file "$env_file")
pm rm -f login-etl-image >/dev/null 2>&1 || true
pm run --rm "${secure[@]}" "$image" send-sample --create-queue --count 0 >/dev/null
pm run --rm "${secure[@]}" "$image" purge-queue --yes >/dev/null || true
pm run --rm "${secure[@]}" "$image" send-sample >/dev/null
# The deploy step before the consumers (docs/deploy.md): migrations as the schema owner.
pm run --rm "${secure[@]}" "$image" migrate >/dev/null
pm run --rm "${secure[@]}" "$image" check >"$stack_dir/image-check.log" 2>&1 \
  || { cat "$stack_dir/image-check.log" >&2; die "check failed in the container"; }
say "ok    check passes in the container"
# docker-compose.yml's login-etl service: its environment (service names mapped to this host, the
# scratch database and queue instead of the take-home's) runs `check` with this image too.
compose_env=$stack_dir/image-test-compose.env
validators=$(validators_bin)   # PyYAML, installed here if validate-deploy.sh has not run
"$validators/python" - "$root/docker-compose.yml" "$db" "$queue" >"$compose_env" <<'PY'
import sys, yaml
compose, db, queue = sys.argv[1:]
env = yaml.safe_load(open(compose))["services"]["login-etl"]["environment"]
env["LOGIN_ETL_SQS_ENDPOINT"] = env["LOGIN_ETL_SQS_ENDPOINT"].replace("localstack:", "127.0.0.1:")
env["LOGIN_ETL_DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{db}"
env["LOGIN_ETL_QUEUE_NAME"] = queue
for key, value in env.items():
    print(f"{key}={value}")
PY
pm run --rm --network host --health-interval=disable --env-file "$compose_env" -e AWS_ACCESS_KEY_ID=test -e AWS_SECRET_ACCESS_KEY=test \
  "$image" check >"$stack_dir/image-check.log" 2>&1 \
  || { cat "$stack_dir/image-check.log" >&2; die "check failed with docker-compose.yml's environment"; }
say "ok    check passes with docker-compose.yml's login-etl environment"

started=$(date +%s%N)
pm run -d --name login-etl-image "${secure[@]}" "$image" >/dev/null
trap 'pm rm -f login-etl-image >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
  sleep 0.1
done
ready_ms=$(( ($(date +%s%N) - started) / 1000000 ))
curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" || die "/readyz did not answer 200 from outside the container"
curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" || die "/healthz did not answer 200 from outside the container"
say "ok    /readyz and /healthz answer from outside; ready ${ready_ms} ms after podman run"

count() { psql -X -qtA -h 127.0.0.1 -U postgres -d "$db" -c "$1"; }
for _ in $(seq 1 120); do
  [ "$(count 'SELECT count(*) FROM user_logins' 2>/dev/null)" = 99 ] \
    && [ "$(count 'SELECT count(*) FROM quarantined_messages' 2>/dev/null)" = 1 ] && break
  sleep 0.5
done
[ "$(count 'SELECT count(*) FROM user_logins')" = 99 ] || die "the containerised drain did not land 99 rows"
[ "$(count 'SELECT count(*) FROM quarantined_messages')" = 1 ] || die "the containerised drain did not quarantine 1"
sleep 2
depth=$(pm run --rm "${secure[@]}" "$image" status --format json \
  | python3 -c 'import json,sys; d=json.load(sys.stdin)["queue"]["depth"]; print(d["visible"]+d["in_flight"])')
[ "$depth" = 0 ] || die "the queue still holds $depth messages"
say "ok    the sample drained in the container: 99 rows, 1 quarantined, queue empty"

pm healthcheck run login-etl-image >/dev/null || die "the image's HEALTHCHECK did not report healthy"
say "ok    HEALTHCHECK healthy"
pm logs login-etl-image 2>&1 | python3 -c '
import json, sys
lines = [l for l in sys.stdin if l.strip()]
assert lines, "no log lines"
for l in lines: json.loads(l)
print(len(lines))' >/dev/null || die "the container's logs are not one JSON object per line"
say "ok    logs are JSON"

pm stop -t 30 login-etl-image >/dev/null
code=$(pm inspect --format '{{.State.ExitCode}}' login-etl-image)
[ "$code" = 0 ] || die "SIGTERM ended the container with exit code $code"
say "ok    SIGTERM: exit 0"
psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null
say "image: $((size / 1000000)) MB, binary $((binary / 1000000)) MB, build ${build_seconds}s, ready ${ready_ms} ms"
