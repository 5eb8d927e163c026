//! Ports for the servers the tests start, bound and handed over, never probed and released
//! (a probed port released is free for any other process of a loaded machine until it is bound
//! again):
//! - login-etl binds `--metrics-addr 127.0.0.1:0` itself and logs the address it got
//!   ([`Spawned::metrics_port`]);
//! - a server that cannot be told port 0 (PostgreSQL, PgBouncer, Prometheus) is started on a
//!   spare port and started again on another one when that port was taken meanwhile
//!   ([`on_a_spare_port`]).

use std::time::Duration;

use super::{wait_until, Spawned};

/// `--metrics-addr` for a child that picks its own port (read it with [`Spawned::metrics_port`]).
pub(crate) const ANY_PORT: &str = "127.0.0.1:0";

/// A port the kernel has just handed out and taken back: only for [`on_a_spare_port`].
fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a server says when its port was taken between the probe and its bind.
pub(crate) fn address_in_use(said: &str) -> bool {
    let said = said.to_ascii_lowercase();
    said.contains("address already in use") || said.contains("could not bind")
}

/// Start a server with `start(port)` on a spare port; when it fails because another process
/// took that port meanwhile (`Err` with what the server said), start it again on another one.
/// Any other failure fails the test with what it said. The server and its port.
pub(crate) fn on_a_spare_port<T>(
    what: &str,
    mut start: impl FnMut(u16) -> Result<T, String>,
) -> (T, u16) {
    let mut said = String::new();
    for _ in 0..5 {
        let port = spare_port();
        match start(port) {
            Ok(server) => return (server, port),
            Err(text) if address_in_use(&text) => said = text,
            Err(text) => panic!("{what} did not start on port {port}: {text}"),
        }
    }
    panic!("{what}: 5 spare ports in a row were taken before it could bind one; last: {said}");
}

impl Spawned {
    /// The port of the metrics endpoint the child bound for `--metrics-addr 127.0.0.1:0`, from
    /// its start-up line `serving /metrics, /healthz and /readyz addr=127.0.0.1:<port>`.
    pub(crate) async fn metrics_port(&mut self) -> u16 {
        let mut port = None;
        wait_until(
            "the metrics endpoint bound",
            Duration::from_secs(120),
            || {
                port = bound_port(&self.log());
                let exited = port.is_none() && self.child.try_wait().unwrap().is_some();
                assert!(
                    !exited,
                    "login-etl exited before serving metrics:\n{}",
                    self.log()
                );
                std::future::ready(port.is_some())
            },
        )
        .await;
        port.unwrap()
    }
}

/// The port in login-etl's `serving /metrics` log line.
fn bound_port(log: &str) -> Option<u16> {
    let line = log.lines().find(|l| l.contains("serving /metrics"))?;
    let addr = line.split_once("addr=")?.1.split_whitespace().next()?;
    let addr = addr.trim_matches(|c| c == '"' || c == ',' || c == '}');
    addr.rsplit_once(':')?.1.parse().ok()
}

#[test]
fn the_bound_port_is_read_from_the_text_log_line() {
    let line = "2025-01-01T00:00:00Z  INFO login_etl::telemetry::server: \
                serving /metrics, /healthz and /readyz addr=127.0.0.1:40123\n";
    assert_eq!(bound_port(line), Some(40123));
    assert_eq!(bound_port("nothing yet"), None);
}
