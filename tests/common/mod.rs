//! Shared fixtures for the integration tests: a fresh PostgreSQL database and a fresh LocalStack
//! queue per test, so tests run in parallel without seeing each other's data.
//!
//! They need the local stack (`scripts/stack-up.sh`, which `scripts/test.sh` runs). Endpoints can be
//! overridden with LOGIN_ETL_TEST_DATABASE_URL (an admin URL) and LOGIN_ETL_TEST_SQS_ENDPOINT.
#![allow(dead_code)] // each test binary uses a different subset

use std::process::{Command, Output};
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use login_etl::mask::{MaskKey, Masker};
use login_etl::pipeline::{self, PipelineSettings, Summary};
use login_etl::sink::{PgSink, TableCounts};
use login_etl::source::{SqsSettings, SqsSource};
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

/// Fixed test key (hex): tests can recompute masks.
pub const TEST_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

pub fn admin_url() -> String {
    std::env::var("LOGIN_ETL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn sqs_endpoint() -> String {
    std::env::var("LOGIN_ETL_TEST_SQS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4566".into())
}

pub fn masker() -> Masker {
    Masker::new(&MaskKey::from_hex(TEST_KEY_HEX).unwrap())
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls)
        .await
        .expect("PostgreSQL is not reachable: run scripts/stack-up.sh (or scripts/test.sh)");
    tokio::spawn(conn);
    client
}

/// A database of its own, dropped at the end of the test.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let name = unique("login_etl_test");
        admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let base = admin_url();
        let url = match base.rsplit_once('/') {
            Some((prefix, _)) => format!("{prefix}/{name}"),
            None => panic!("admin URL must end with /dbname"),
        };
        Self { name, url }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }

    pub fn sink(&self) -> PgSink {
        PgSink::new(&self.url).unwrap()
    }

    pub async fn counts(&self) -> TableCounts {
        self.sink().counts().await.unwrap()
    }

    /// Every table of the database as text, one line per row: for scanning for raw PII.
    pub async fn dump_all_tables(&self) -> String {
        let client = self.client().await;
        let tables: Vec<String> = client
            .query(
                "SELECT quote_ident(table_name) FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            tables.len() >= 3,
            "expected the schema to exist, got {tables:?}"
        );
        let mut dump = String::new();
        for table in tables {
            for row in client
                .query(&format!("SELECT t::text FROM {table} t"), &[])
                .await
                .unwrap()
            {
                dump.push_str(&row.get::<_, String>(0));
                dump.push('\n');
            }
        }
        dump
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime: do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin_url(), NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            })
        })
        .join();
    }
}

/// A queue of its own with a given visibility timeout, deleted at the end of the test.
pub struct TestQueue {
    pub name: String,
    pub source: SqsSource,
}

impl TestQueue {
    pub async fn new(visibility_timeout_secs: u32) -> Self {
        let name = unique("login-etl-test").replace('_', "-");
        let settings = Self::settings_for(&name);
        login_etl::source::sqs::client(&settings)
            .await
            .create_queue()
            .queue_name(&name)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout_secs.to_string(),
            )
            .send()
            .await
            .expect(
                "LocalStack SQS is not reachable: run scripts/stack-up.sh (or scripts/test.sh)",
            );
        let source = SqsSource::connect(&settings).await.unwrap();
        Self { name, source }
    }

    fn settings_for(name: &str) -> SqsSettings {
        SqsSettings {
            endpoint: Some(sqs_endpoint()),
            region: Some("us-east-1".into()),
            queue_url: None,
            queue_name: name.into(),
        }
    }

    pub fn settings(&self) -> SqsSettings {
        Self::settings_for(&self.name)
    }

    pub async fn send(&self, bodies: &[String]) -> Vec<String> {
        self.source.send(bodies).await.unwrap()
    }

    /// Visible + in flight.
    pub async fn remaining(&self) -> u64 {
        let depth = self.source.depth().await.unwrap();
        depth.visible + depth.in_flight
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        let settings = self.settings();
        let url = self.source.queue_url().to_string();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = login_etl::source::sqs::client(&settings).await;
                let _ = client.delete_queue().queue_url(url).send().await;
            })
        })
        .join();
    }
}

/// Drain settings that keep tests quick.
pub fn drain_settings() -> PipelineSettings {
    PipelineSettings {
        batch_size: 50,
        batch_max_wait: Duration::from_millis(200),
        receivers: 2,
        wait_time: Duration::from_secs(1),
        drain_idle: Some(Duration::from_secs(1)),
        max_receives: 5,
        write_retry_timeout: Duration::from_secs(5),
        dead_letter_queue: None,
    }
}

/// Drain `queue` into `db` in-process.
pub async fn drain(queue: &TestQueue, db: &TestDb) -> Summary {
    let mut sink = db.sink();
    sink.migrate().await.unwrap();
    pipeline::run(
        queue.source.clone(),
        sink,
        masker(),
        drain_settings(),
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

/// The binary, configured for this queue and database through the environment (as in production).
pub fn binary(queue: &TestQueue, db: &TestDb) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_login-etl"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LOGIN_ETL_SQS_ENDPOINT", sqs_endpoint())
        .env("LOGIN_ETL_QUEUE_NAME", &queue.name)
        .env("LOGIN_ETL_DATABASE_URL", &db.url)
        .env("LOGIN_ETL_MASK_KEY", TEST_KEY_HEX)
        .env("LOGIN_ETL_LOG", "trace")
        .env("LOGIN_ETL_DRAIN_IDLE_SECONDS", "1")
        .env("LOGIN_ETL_BATCH_MAX_WAIT_MS", "200");
    cmd
}

pub fn run_binary(cmd: &mut Command) -> Output {
    cmd.output().expect("the login-etl binary runs")
}

/// The bundled sample, as sent by `send-sample`.
pub fn sample_bodies() -> Vec<String> {
    login_etl::app::SAMPLE_JSONL
        .lines()
        .map(String::from)
        .collect()
}

/// Every raw `ip` and `device_id` string value found in the bodies (the values that must never be stored).
pub fn raw_pii(bodies: &[String]) -> Vec<String> {
    let mut values = Vec::new();
    for body in bodies {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body)
        {
            for key in ["ip", "device_id"] {
                if let Some(serde_json::Value::String(s)) = map.get(key) {
                    if s.trim().len() >= 3 {
                        values.push(s.trim().to_string());
                    }
                }
            }
        }
    }
    values
}

/// Panic if any raw value appears in `haystack`.
pub fn assert_no_raw_pii(haystack: &str, raw: &[String], what: &str) {
    let leaked: Vec<_> = raw
        .iter()
        .filter(|v| haystack.contains(v.as_str()))
        .collect();
    assert!(
        leaked.is_empty(),
        "{} raw PII values leaked into {what}",
        leaked.len()
    );
}
