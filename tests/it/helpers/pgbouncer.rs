//! Debian's PgBouncer in `pool_mode = transaction` in front of the local PostgreSQL, on its own
//! port and directory (installed by scripts/stack-up.sh), as RDS Proxy or a shared PgBouncer
//! would sit in front of the database in production.

use std::process::Command;

use super::{address_in_use, on_a_spare_port, unique};

pub(crate) struct PgBouncer {
    pub port: u16,
    dir: std::path::PathBuf,
}

impl PgBouncer {
    pub(crate) fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("login-etl-pgbouncer"));
        std::fs::create_dir_all(&dir).unwrap();
        let ((), port) = on_a_spare_port("pgbouncer", |port| start_on(&dir, port));
        Self { port, dir }
    }

    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

/// Start PgBouncer on `port`; `Err` with its log when it could not listen there. It forks
/// before it binds, so the outcome is read from its log, not its exit status.
fn start_on(dir: &std::path::Path, port: u16) -> Result<(), String> {
    let log = dir.join("pgbouncer.log");
    let _ = std::fs::remove_file(&log);
    let config = format!(
        "[databases]\n* = host=127.0.0.1 port=5432\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
         listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {dir}/users.txt\n\
         pool_mode = transaction\nmax_client_conn = 200\ndefault_pool_size = 4\n\
         logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("pgbouncer.ini"), config).unwrap();
    std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").unwrap();
    // PgBouncer refuses to run as root.
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut cmd = if root {
        Command::new("chown")
            .args(["-R", "postgres"])
            .arg(dir)
            .status()
            .unwrap();
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", "/usr/sbin/pgbouncer"]);
        cmd
    } else {
        Command::new("/usr/sbin/pgbouncer")
    };
    let status = cmd
        .arg("-d")
        .arg(dir.join("pgbouncer.ini"))
        .status()
        .unwrap();
    assert!(
        status.success(),
        "pgbouncer did not start (apt-get install pgbouncer)"
    );
    let listening = format!("listening on 127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        if said.contains(&listening) {
            return Ok(());
        }
        if address_in_use(&said) || said.contains("FATAL") {
            return Err(said);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!(
        "pgbouncer neither listens on {port} nor says why: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
