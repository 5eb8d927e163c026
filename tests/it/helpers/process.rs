//! Running the real binary: configured like production (through the environment), in the
//! foreground or spawned with its output in files.

use std::process::{Command, Output};
use std::time::Duration;

use super::{unique, TestDb, TestQueue, TEST_KEY_HEX};

/// The binary, configured for this queue and database through the environment (as in production).
pub(crate) fn binary(queue: &TestQueue, db: &TestDb) -> Command {
    binary_for(queue, &db.url)
}

/// The binary, for any database URL.
pub(crate) fn binary_for(queue: &TestQueue, database_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_login-etl"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // Never let the AWS SDK look for instance credentials off this machine.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("LOGIN_ETL_SQS_ENDPOINT", &queue.endpoint)
        .env("LOGIN_ETL_QUEUE_NAME", &queue.name)
        .env("LOGIN_ETL_DATABASE_URL", database_url)
        .env("LOGIN_ETL_MASK_KEY", TEST_KEY_HEX)
        .env("LOGIN_ETL_LOG", "trace")
        .env("LOGIN_ETL_DRAIN_IDLE_SECONDS", "1")
        .env("LOGIN_ETL_BATCH_MAX_WAIT_MS", "200");
    cmd
}

pub(crate) fn run_binary(cmd: &mut Command) -> Output {
    cmd.output().expect("the login-etl binary runs")
}

/// Spawn the binary with stderr to a file (a pipe nobody reads would fill and block it).
pub(crate) struct Spawned {
    pub child: std::process::Child,
    pub log_path: std::path::PathBuf,
    pub stdout_path: std::path::PathBuf,
}

impl Spawned {
    pub(crate) fn new(cmd: &mut Command) -> Self {
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

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub(crate) fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Ask for a graceful stop (SIGTERM).
    pub(crate) fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub(crate) fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }

    /// Wait for exit, at most `limit`.
    pub(crate) async fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
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
pub(crate) async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
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

/// One plain HTTP/1.0 GET on loopback: (status, body); `None` if nothing listens.
pub(crate) async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.ok()?;
    let status = reply.split_whitespace().nth(1)?.parse().ok()?;
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Run the binary to completion; it must succeed (its stderr is the failure message).
pub(crate) fn run_ok(cmd: &mut Command) -> Output {
    let out = run_binary(cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `run --drain` of `queue` into `db`, with `extra` flags; it must succeed.
pub(crate) fn run_drain(queue: &TestQueue, db: &TestDb, extra: &[&str]) -> Output {
    run_ok(binary(queue, db).args(["run", "--drain"]).args(extra))
}

/// Longest a fault retrying cannot fix may take to end the process: far above a slow start on a
/// loaded machine, far below the default retry budget (300 s) that a retry loop would spend.
pub(crate) const AT_ONCE: Duration = Duration::from_secs(60);

/// A fault retrying cannot fix stopped the process at once: not one retry line in what it
/// printed (the evidence, whatever the machine's speed), and within [`AT_ONCE`].
pub(crate) fn assert_stopped_at_once(printed: &str, took: Duration) {
    let retries: Vec<&str> = printed
        .lines()
        .filter(|l| l.contains(", retrying"))
        .collect();
    assert!(
        retries.is_empty(),
        "a fault retrying cannot fix was retried: {retries:#?}\n{printed}"
    );
    assert!(
        took < AT_ONCE,
        "stopped after {took:?}, not at once:\n{printed}"
    );
}
