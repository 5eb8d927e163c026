//! A throwaway PostgreSQL cluster for tests that stop the server, need TLS, or restore a backup.

use std::process::Command;

use super::{on_a_spare_port, unique};

/// A throwaway PostgreSQL cluster (initdb + pg_ctl) on a spare port, so a test can stop and start
/// a server without disturbing the others. Removed at the end of the test.
pub(crate) struct TempCluster {
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

/// Give `path` to the `postgres` user when we are root (its tools run as that user).
fn give_to_postgres(path: &std::path::Path, recursive: bool) {
    if is_root() {
        let mut chown = Command::new("chown");
        if recursive {
            chown.arg("-R");
        }
        assert!(chown
            .arg("postgres:postgres")
            .arg(path)
            .status()
            .unwrap()
            .success());
    }
}

/// Run a PostgreSQL tool; a failure fails the test with what it said.
fn succeed(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client of `url` without TLS, its connection driven in the background.
pub(crate) async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// The one number `sql` returns.
pub(crate) async fn pg_count(url: &str, sql: &str) -> i64 {
    pg_client(url)
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
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

impl TempCluster {
    pub(crate) fn new() -> Self {
        Self::init(None, None)
    }

    /// A cluster that accepts only TLS connections over TCP, with this certificate and key (PEM).
    pub(crate) fn with_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::init(Some((cert_pem, key_pem)), None)
    }

    /// A cluster that asks every role but `postgres` for its password over TCP (scram-sha-256),
    /// as a production server does; `postgres` is trusted, to set roles up.
    pub(crate) fn with_passwords() -> Self {
        Self::init(
            None,
            Some(
                "local all all trust\nhost all postgres 127.0.0.1/32 trust\n\
                 host all all 127.0.0.1/32 scram-sha-256\n",
            ),
        )
    }

    fn init(tls: Option<(&str, &str)>, hba: Option<&str>) -> Self {
        let dir = std::env::temp_dir().join(unique("login-etl-pg"));
        std::fs::create_dir_all(&dir).unwrap();
        give_to_postgres(&dir, false);
        succeed(
            pg_command("initdb")
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
                .arg(&dir),
            "initdb",
        );
        if let Some((cert, key)) = tls {
            let write = |name: &str, text: &str| {
                let path = dir.join(name);
                std::fs::write(&path, text).unwrap();
                give_to_postgres(&path, false);
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
        if let Some(hba) = hba {
            std::fs::write(dir.join("pg_hba.conf"), hba).unwrap();
        }
        Self::started(dir)
    }

    /// A folder the `postgres` user owns (a WAL archive, a backup), removed with the test's
    /// temp files.
    pub(crate) fn postgres_dir(prefix: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&dir).unwrap();
        give_to_postgres(&dir, false);
        dir
    }

    /// `pg_receivewal --synchronous` into `archive` through the slot `archiver`: every WAL
    /// record reaches the archive and is flushed there as it is written (with
    /// `synchronous_standby_names = 'pg_receivewal'`, before its commit returns). Ends when the
    /// server goes away.
    pub(crate) fn stream_wal_to(&self, archive: &std::path::Path) -> std::process::Child {
        let port = self.port.to_string();
        succeed(
            pg_command("pg_receivewal")
                .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
                .args([
                    "--slot",
                    "archiver",
                    "--create-slot",
                    "--if-not-exists",
                    "-D",
                ])
                .arg(archive),
            "pg_receivewal --create-slot",
        );
        pg_command("pg_receivewal")
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
            .args(["--slot", "archiver", "--synchronous", "--no-loop", "-D"])
            .arg(archive)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// A base backup of the running cluster (`pg_basebackup`, WAL included) in a new folder; the
    /// checkpoint it starts from is taken at once (`--checkpoint fast`), not spread over minutes.
    pub(crate) fn base_backup(&self) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(unique("login-etl-pg-backup"));
        succeed(
            pg_command("pg_basebackup")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args([
                    "-U",
                    "postgres",
                    "-X",
                    "stream",
                    "--checkpoint",
                    "fast",
                    "--no-sync",
                    "-D",
                ])
                .arg(&dir),
            "pg_basebackup",
        );
        dir
    }

    /// A new cluster from `backup`, replaying `archive` to its end (the last, partial segment
    /// included), then promoted and started on its own port: a point-in-time restore to the
    /// latest point.
    pub(crate) fn restored_from(backup: &std::path::Path, archive: &std::path::Path) -> Self {
        let dir = std::env::temp_dir().join(unique("login-etl-pg-restored"));
        assert!(Command::new("cp")
            .arg("-a")
            .arg(backup)
            .arg(&dir)
            .status()
            .unwrap()
            .success());
        let archive = archive.display();
        let conf = format!(
            "\nrestore_command = 'cp {archive}/%f %p || cp {archive}/%f.partial %p'\n\
             recovery_target_timeline = 'latest'\n"
        );
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("postgresql.auto.conf"))
            .unwrap();
        std::io::Write::write_all(&mut file, conf.as_bytes()).unwrap();
        std::fs::write(dir.join("recovery.signal"), "").unwrap();
        give_to_postgres(&dir, true);
        Self::started(dir)
    }

    /// Stop at once, as a crash would, and delete the data directory: the server is gone.
    pub(crate) fn destroy(self) {
        drop(self);
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), started on its own port.
    pub(crate) fn standby_of(primary: &TempCluster) -> Self {
        let dir = std::env::temp_dir().join(unique("login-etl-pg-standby"));
        succeed(
            pg_command("pg_basebackup")
                .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
                .args(["-U", "postgres", "-R", "-X", "stream", "--no-sync", "-D"])
                .arg(&dir),
            "pg_basebackup",
        );
        Self::started(dir)
    }

    /// Promote a standby to a primary and wait until it accepts writes.
    pub(crate) fn promote(&self) {
        succeed(
            pg_command("pg_ctl")
                .args(["-w", "-t", "30", "-D"])
                .arg(&self.dir)
                .arg("promote"),
            "pg_ctl promote",
        );
    }

    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Start `dir`'s server on a port of its own: a spare one, and another one if a process took
    /// that port before the server could bind it.
    fn started(dir: std::path::PathBuf) -> Self {
        let ((), port) = on_a_spare_port("PostgreSQL", |port| try_start(&dir, port));
        Self { dir, port }
    }

    /// Start the server again on its port (after [`stop`](Self::stop)).
    pub(crate) fn start(&self) {
        if let Err(said) = try_start(&self.dir, self.port) {
            panic!("pg_ctl start: {said}");
        }
    }

    pub(crate) fn stop(&self) {
        succeed(
            pg_command("pg_ctl")
                .args(["-w", "-m", "fast", "-D"])
                .arg(&self.dir)
                .arg("stop"),
            "pg_ctl stop",
        );
    }
}

/// `pg_ctl start` of `dir` on `port`; on failure, what pg_ctl and the server's log said (the
/// reason, such as a port taken, is only in the log).
fn try_start(dir: &std::path::Path, port: u16) -> Result<(), String> {
    let log = dir.join("server.log");
    let logged_before = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
    let options = format!(
        "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
        dir.display()
    );
    let out = pg_command("pg_ctl")
        .args(["-w", "-t", "120", "-l"])
        .arg(&log)
        .args(["-o", &options, "-D"])
        .arg(dir)
        .arg("start")
        .output()
        .unwrap();
    if out.status.success() {
        return Ok(());
    }
    let logged = std::fs::read(&log).unwrap_or_default();
    Err(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(logged.get(logged_before..).unwrap_or_default())
    ))
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
