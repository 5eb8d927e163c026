//! Debian's PgBouncer in `pool_mode = transaction` in front of the local PostgreSQL, on its own
//! port and directory (installed by scripts/stack-up.sh), as RDS Proxy or a shared PgBouncer
//! would sit in front of the database in production.

use std::process::Command;

use super::{free_port, unique};

pub(crate) struct PgBouncer {
    pub port: u16,
    dir: std::path::PathBuf,
}

impl PgBouncer {
    pub(crate) fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("login-etl-pgbouncer"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
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
                .arg(&dir)
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
        for _ in 0..50 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { port, dir };
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("pgbouncer is not listening on {port}");
    }

    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
