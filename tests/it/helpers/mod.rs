//! Fixtures for the integration tests, one file per concern: a fresh PostgreSQL database
//! ([`db`]) and a fresh LocalStack queue ([`queue`]) per test, so tests run in parallel without
//! seeing each other's data; the real binary ([`process`]); throwaway clusters ([`cluster`]); a
//! cuttable network path to SQS ([`proxy`]); message sets and PII scans ([`pii`]).
//!
//! They need the local stack (`scripts/stack-up.sh`, which `scripts/test.sh` runs). Endpoints can be
//! overridden with LOGIN_ETL_TEST_DATABASE_URL (an admin URL) and LOGIN_ETL_TEST_SQS_ENDPOINT.

mod cluster;
mod db;
mod fake_s3;
mod fake_sqs;
mod pgbouncer;
mod pii;
mod policies;
mod ports;
mod process;
mod proxy;
mod queue;
mod s3;
mod scenarios;

pub(crate) use cluster::{pg_client, pg_count, TempCluster};
pub(crate) use db::{
    assert_no_poison, hold_writes, least_privilege_role, lock_waiters, refuse_web_logins,
    sleeping_backends, slow_down_copy, TestDb,
};
pub(crate) use fake_s3::{Breaks, FakeS3, Lie};
pub(crate) use fake_sqs::{FakeSqs, Reply};
use login_etl::mask::{KeyRing, Masker};
pub(crate) use pgbouncer::PgBouncer;
pub(crate) use pii::*;
pub(crate) use policies::*;
pub(crate) use ports::{address_in_use, on_a_spare_port, ANY_PORT};
pub(crate) use process::*;
pub(crate) use proxy::{PgProxy, SqsProxy};
pub(crate) use queue::*;
pub(crate) use s3::{gzip_members, object_progress, s3_client, TestBucket};
pub(crate) use scenarios::*;

/// Fixed test key (hex): tests can recompute masks.
pub(crate) const TEST_KEY_HEX: &str =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

pub(crate) fn admin_url() -> String {
    std::env::var("LOGIN_ETL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub(crate) fn sqs_endpoint() -> String {
    std::env::var("LOGIN_ETL_TEST_SQS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4566".into())
}

/// An SQS that speaks only the query protocol, like the take-home's LocalStack image: LocalStack
/// 1.4 in host mode, started by scripts/query-sqs-up.sh.
pub(crate) fn query_only_sqs_endpoint() -> String {
    std::env::var("LOGIN_ETL_TEST_QUERY_SQS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:4567".into())
}

/// moto 4.1.10, the other query-only SQS (it answers JSON requests with HTTP 200 and XML).
pub(crate) fn moto_sqs_endpoint() -> String {
    std::env::var("LOGIN_ETL_TEST_MOTO_SQS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:4568".into())
}

pub(crate) fn masker() -> Masker {
    Masker::hmac(&KeyRing::parse(TEST_KEY_HEX).unwrap())
}

pub(crate) fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// `text` gzip'd and base64-encoded, as producers that pay per request send it.
pub(crate) fn gzip_base64(text: &str) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(encoder.finish().unwrap())
}

/// `texts` as one gzip member each, concatenated (`cat a.gz b.gz`), base64 wrapped at 76 columns
/// with a final newline (GNU `base64`'s output).
pub(crate) fn gzip_members_base64_wrapped(texts: &[&str]) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut bytes = Vec::new();
    for text in texts {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        bytes.extend(encoder.finish().unwrap());
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    lines.join("\n") + "\n"
}

/// `host:port` of a URL such as `postgres://u@127.0.0.1:5432/db` or `http://127.0.0.1:4566`.
fn host_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:{default_port}")
    }
}

/// Without the local stack every test would fail deep inside a fixture; fail at the start instead,
/// saying what to do.
pub(crate) fn require_stack() {
    require_endpoint(&admin_url(), "PostgreSQL");
    require_endpoint(&sqs_endpoint(), "LocalStack");
}

/// Panic with one line naming what to start when `url`'s host:port does not accept connections.
/// A panic fails this test only (and is reported as such), never the whole test binary, and no
/// test passes without the service it needs.
pub(crate) fn require_endpoint(url: &str, what: &str) {
    use std::net::ToSocketAddrs;
    let address = host_port(
        url,
        if url.starts_with("postgres") {
            5432
        } else {
            80
        },
    );
    let reachable = address
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok()
        });
    assert!(
        reachable,
        "the integration tests need {what} ({address}), which does not answer; \
         run the README's test command, scripts/test.sh, which starts it"
    );
}

/// The books balance: exactly `rows` rows and `quarantined` quarantine entries, one ledger id
/// per message, and nothing left in the queue.
pub(crate) async fn assert_landed(db: &TestDb, queue: &TestQueue, rows: i64, quarantined: i64) {
    let counts = db.counts().await;
    assert_eq!(
        (counts.rows, counts.quarantined(), counts.processed),
        (rows, quarantined, rows + quarantined),
        "rows, quarantined, ledger ids"
    );
    assert_eq!(queue.remaining().await, 0, "queue drained");
}
