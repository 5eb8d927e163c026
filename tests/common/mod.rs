//! Shared fixtures for the integration tests: a fresh PostgreSQL database and a fresh LocalStack
//! queue per test, so tests run in parallel without seeing each other's data.
//!
//! They need the local stack (`scripts/stack-up.sh`, which `scripts/test.sh` runs). Endpoints can be
//! overridden with LOGIN_ETL_TEST_DATABASE_URL (an admin URL) and LOGIN_ETL_TEST_SQS_ENDPOINT.
#![allow(dead_code)] // each test binary uses a different subset

use std::process::{Command, Output};
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use login_etl::mask::{KeyRing, Masker};
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
    Masker::hmac(&KeyRing::parse(TEST_KEY_HEX).unwrap())
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
    binary_for(queue, &db.url)
}

/// The binary, for any database URL.
pub fn binary_for(queue: &TestQueue, database_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_login-etl"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // Never let the AWS SDK look for instance credentials off this machine.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("LOGIN_ETL_SQS_ENDPOINT", sqs_endpoint())
        .env("LOGIN_ETL_QUEUE_NAME", &queue.name)
        .env("LOGIN_ETL_DATABASE_URL", database_url)
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

/// A throwaway PostgreSQL cluster (initdb + pg_ctl) on a spare port, so a test can stop and start
/// a server without disturbing the others. Removed at the end of the test.
pub struct TempCluster {
    pub dir: std::path::PathBuf,
    pub port: u16,
}

/// `initdb`/`pg_ctl` from PATH, else from Debian's versioned directory.
fn pg_tool(name: &str) -> std::path::PathBuf {
    if let Ok(out) = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
    {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !path.is_empty() {
            return path.into();
        }
    }
    let mut candidates: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries (apt-get install postgresql)")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    candidates.sort();
    candidates.pop().expect("initdb/pg_ctl not found")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// PostgreSQL refuses to run as root: run its tools as the `postgres` user when we are root.
fn pg_command(tool: &str) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(pg_tool(tool));
        cmd
    } else {
        Command::new(pg_tool(tool))
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TempCluster {
    pub fn new() -> Self {
        Self::init(None)
    }

    /// A cluster that accepts only TLS connections over TCP, with this certificate and key (PEM).
    pub fn with_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::init(Some((cert_pem, key_pem)))
    }

    fn init(tls: Option<(&str, &str)>) -> Self {
        let dir = std::env::temp_dir().join(unique("login-etl-pg"));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            assert!(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap()
                .success());
        }
        let out = pg_command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some((cert, key)) = tls {
            let write = |name: &str, text: &str| {
                let path = dir.join(name);
                std::fs::write(&path, text).unwrap();
                if is_root() {
                    Command::new("chown")
                        .arg("postgres:postgres")
                        .arg(&path)
                        .status()
                        .unwrap();
                }
                Command::new("chmod")
                    .arg("600")
                    .arg(&path)
                    .status()
                    .unwrap();
            };
            write("server.crt", cert);
            write("server.key", key);
            let mut conf = std::fs::OpenOptions::new()
                .append(true)
                .open(dir.join("postgresql.conf"))
                .unwrap();
            std::io::Write::write_all(
                &mut conf,
                b"\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
            )
            .unwrap();
            // Only TLS connections over TCP; plain ones are refused.
            std::fs::write(
                dir.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n",
            )
            .unwrap();
        }
        let cluster = Self {
            dir,
            port: free_port(),
        };
        cluster.start();
        cluster
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let out = pg_command("pg_ctl")
            .args(["-w", "-t", "30", "-l"])
            .arg(self.dir.join("server.log"))
            .args(["-o", &options, "-D"])
            .arg(&self.dir)
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn stop(&self) {
        let out = pg_command("pg_ctl")
            .args(["-w", "-m", "fast", "-D"])
            .arg(&self.dir)
            .arg("stop")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let _ = pg_command("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(&self.dir)
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP proxy to LocalStack that a test can cut: while down, new connections are closed at once
/// and open ones are dropped, as when the network to SQS fails.
pub struct SqsProxy {
    pub port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

impl SqsProxy {
    pub async fn start(up: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::watch::channel(up);
        let target = sqs_endpoint()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*rx.borrow() {
                    continue; // dropped: the client sees the connection closed
                }
                let mut down = rx.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { port, up: tx }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// Spawn the binary with stderr to a file (a pipe nobody reads would fill and block it).
pub struct Spawned {
    pub child: std::process::Child,
    pub log_path: std::path::PathBuf,
    pub stdout_path: std::path::PathBuf,
}

impl Spawned {
    pub fn new(cmd: &mut Command) -> Self {
        let base = std::env::temp_dir().join(unique("login-etl-run"));
        let log_path = base.with_extension("log");
        let stdout_path = base.with_extension("out");
        let child = cmd
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            log_path,
            stdout_path,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }

    /// Wait for exit, at most `limit`.
    pub async fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                self.child.kill().ok();
                panic!(
                    "login-etl did not exit within {limit:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
        let _ = std::fs::remove_file(&self.stdout_path);
    }
}

/// Poll `check` every 50 ms until it is true, at most `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `count` synthetic messages (1 % bad) from the project's generator.
pub fn synthetic(count: usize, seed: u64) -> Vec<String> {
    login_etl::sample::generate(&login_etl::sample::SampleSpec {
        count,
        bad_share: 0.01,
        seed,
    })
}

/// How many of `bodies` are valid logins (the rest must be quarantined).
pub fn valid_count(bodies: &[String]) -> i64 {
    bodies
        .iter()
        .filter(|b| login_etl::event::decode(b).is_ok())
        .count() as i64
}
