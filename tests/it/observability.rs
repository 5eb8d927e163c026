//! The dashboard and alert rules of deploy/observability against a real Prometheus (Debian's
//! `prometheus`, its own port and data directory, 1 s scrapes) scraping a real `login-etl run`
//! during a drain of 3,000 messages: every dashboard query returns data, every alert expression
//! evaluates and every metric either names is exported, none exempt (every series known in
//! advance starts at 0); then PostgreSQL (a private cluster) is stopped and `LoginEtlNotReady`
//! goes pending, then firing (the test copy of the rules has `for: 5s`).

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A scratch directory removed on drop.
    pub(super) struct Dir(pub(super) std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Prometheus {
    /// Prometheus scraping `target` every second, with the rules of deploy/observability (their
    /// `for:` shortened to 5 s).
    fn start(target: u16) -> Self {
        if Command::new("prometheus")
            .arg("--version")
            .output()
            .is_err()
        {
            panic!("prometheus is not installed (scripts/test.sh installs Debian's package)");
        }
        let dir = std::env::temp_dir().join(unique("login-etl-prometheus"));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let rules = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/observability/alerts.yml"
        ))
        .unwrap();
        let rules = ["for: 5m", "for: 10m", "for: 15m"]
            .iter()
            .fold(rules, |text, long| text.replace(long, "for: 5s"));
        std::fs::write(dir.join("alerts.yml"), rules).unwrap();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [{}]\n\
             scrape_configs:\n  - job_name: login-etl\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n",
            dir.join("alerts.yml").display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let (child, port) = on_a_spare_port("prometheus", |port| serve_on(&dir, port));
        Self {
            child,
            port,
            _dir: tempdir::Dir(dir),
        }
    }

    /// `GET /api/v1/<path>`'s `data`.
    async fn api(&self, path: &str) -> Value {
        let (status, body) = http_get(self.port, &format!("/api/v1/{path}"))
            .await
            .unwrap_or_else(|| panic!("Prometheus did not answer {path}"));
        let reply: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(
            (status, &reply["status"]),
            (200, &Value::from("success")),
            "{path}: {body}"
        );
        reply["data"].clone()
    }

    /// The result of an instant query.
    async fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api(&format!("query?query={}", encode(expr))).await;
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The state of an alert (`inactive` when Prometheus lists no instance of it).
    async fn alert_state(&self, name: &str) -> String {
        let data = self.api("alerts").await;
        (data["alerts"].as_array().into_iter().flatten())
            .find(|a| a["labels"]["alertname"] == name)
            .map_or("inactive".into(), |a| {
                a["state"].as_str().unwrap_or("").to_string()
            })
    }
}

/// Prometheus on `port`, once it says it serves; `Err` with what it said when it exited (such as
/// "address already in use": the port was taken after it was found free).
fn serve_on(dir: &std::path::Path, port: u16) -> Result<Child, String> {
    let log = dir.join("err.log");
    let mut child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::fs::File::create(dir.join("out.log")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        if child.try_wait().unwrap().is_some() {
            return Err(said);
        }
        if said.contains("Server is ready to receive web requests") {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("prometheus did not get ready on {port}");
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encoding for a query string.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `login_etl_…` metric an expression names (histogram series mapped to their family).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("login_etl_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// The dashboard's queries, with its variables set to "everything" and a 1 m rate window.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/observability/grafana-dashboard.json"
    ))
    .unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$job", ".*")
                .replace("$instance", ".*");
            queries.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    queries
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_and_alerts_work_against_a_real_prometheus() {
    let cluster = TempCluster::new();
    let (admin, conn) = tokio_postgres::connect(&cluster.url("postgres"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute("CREATE DATABASE observed")
        .await
        .unwrap();
    let url = cluster.url("observed");
    let queue = TestQueue::new(30).await;
    let bodies = synthetic(3000, 11);
    queue.send(&bodies).await;

    // login-etl binds its own port and says which; Prometheus is then told to scrape it. The
    // counters are cumulative, so what Prometheus missed of the start is still counted.
    let mut run = Spawned::new(
        binary_for(&queue, &url)
            .env("LOGIN_ETL_METRICS_ADDR", ANY_PORT)
            .arg("run"),
    );
    let metrics_port = run.metrics_port().await;
    let prometheus = Prometheus::start(metrics_port);
    wait_until("Prometheus ready", Duration::from_secs(120), || async {
        matches!(http_get(prometheus.port, "/-/ready").await, Some((200, _)))
    })
    .await;
    wait_until("the drain, scraped", Duration::from_secs(90), || async {
        let landed = prometheus.query("sum(login_etl_rows_written_total)").await;
        landed
            .first()
            .and_then(|r| r["value"][1].as_str())
            .map(str::to_string)
            == Some(valid_count(&bodies).to_string())
    })
    .await;
    // A few more scrapes after the drain, so every rate() of the dashboard has samples.
    let scrapes = || async {
        let up = prometheus.query("count_over_time(up[1h])").await;
        (up.first().and_then(|r| r["value"][1].as_str()))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let at_drain = scrapes().await;
    wait_until("3 more scrapes", Duration::from_secs(60), || async {
        scrapes().await >= at_drain + 3
    })
    .await;

    // Every metric the dashboard or an alert names is exported.
    let exported: BTreeSet<String> = (prometheus.api("label/__name__/values").await)
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str().map(String::from))
        .collect();
    let rules = prometheus.api("rules").await;
    let alert_queries: Vec<(String, String)> = (rules["groups"].as_array().unwrap().iter())
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["query"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(alert_queries.len(), 8, "{rules}");
    let mut problems = Vec::new();
    for (what, expr) in dashboard_queries().iter().chain(&alert_queries) {
        for name in metric_names(expr) {
            if !exported.contains(&name) {
                problems.push(format!("{what}: {name} is not exported"));
            }
        }
    }
    // Every dashboard query returns data.
    for (panel, expr) in dashboard_queries() {
        if prometheus.query(&expr).await.is_empty() {
            problems.push(format!("{panel}: no data for {expr}"));
        }
    }
    // Every alert expression evaluates (none fires on a healthy drain).
    for (alert, expr) in &alert_queries {
        let firing = prometheus.query(expr).await;
        if !firing.is_empty() {
            problems.push(format!("{alert} holds on a healthy drain: {firing:?}"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // PostgreSQL goes away: not ready, pending, then firing.
    cluster.stop();
    wait_until(
        "LoginEtlNotReady pending",
        Duration::from_secs(60),
        || async { prometheus.alert_state("LoginEtlNotReady").await == "pending" },
    )
    .await;
    wait_until(
        "LoginEtlNotReady firing",
        Duration::from_secs(60),
        || async { prometheus.alert_state("LoginEtlNotReady").await == "firing" },
    )
    .await;
    run.sigterm();
    run.wait(Duration::from_secs(60)).await;
}

/// Every metric of docs/operations.md's table with its type (`counter`, `gauge`, `histogram`).
fn documented_metrics() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .unwrap();
    let table = doc
        .split("\n| metric | type | meaning |")
        .nth(1)
        .expect("docs/operations.md has the metrics table");
    let mut metrics = Vec::new();
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        for name in metric_names(cells[1]) {
            metrics.push((name, cells[2].to_string()));
        }
    }
    assert!(metrics.len() > 20, "{metrics:?}");
    metrics
}

/// Right after start-up, before any message: every metric of docs/operations.md's table is on
/// `/metrics`, every counter series at 0 (each retry kind, quarantine reason and envelope among
/// them) and every histogram with a count of 0, so dashboards show 0, not "No data".
#[tokio::test(flavor = "multi_thread")]
async fn every_documented_metric_is_exported_from_the_start() {
    let db = TestDb::new().await;
    let queue = TestQueue::new(30).await;
    let mut run = Spawned::new(
        binary(&queue, &db)
            .env("LOGIN_ETL_METRICS_ADDR", ANY_PORT)
            .arg("run"),
    );
    let port = run.metrics_port().await;
    // The first probe (SQS and PostgreSQL answered) sets the readiness and the queue depth.
    wait_until("ready", Duration::from_secs(60), || async {
        matches!(http_get(port, "/readyz").await, Some((200, _)))
    })
    .await;
    let (_, text) = http_get(port, "/metrics").await.unwrap();
    let samples: Vec<(&str, f64)> = (text.lines())
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series, value.parse().unwrap()))
        .collect();
    let mut problems = Vec::new();
    for (name, kind) in documented_metrics() {
        let sample_name = match kind.as_str() {
            "histogram" => format!("{name}_count"),
            _ => name.clone(),
        };
        let series: Vec<&(&str, f64)> = (samples.iter())
            .filter(|(s, _)| *s == sample_name || s.starts_with(&format!("{sample_name}{{")))
            .collect();
        if series.is_empty() {
            problems.push(format!("{name} ({kind}) is not exported at start-up"));
        }
        if kind != "gauge" {
            for (s, value) in series.iter().filter(|(_, v)| *v != 0.0) {
                problems.push(format!("{s} is {value} at start-up"));
            }
        }
    }
    let count = |prefix: &str| {
        samples
            .iter()
            .filter(|(s, _)| s.starts_with(prefix))
            .count()
    };
    for (prefix, known) in [
        ("login_etl_retries_total{", 5),
        ("login_etl_quarantined_total{", 8),
        ("login_etl_messages_by_envelope_total{", 3),
    ] {
        if count(prefix) != known {
            problems.push(format!(
                "{prefix}…}}: {} series, {known} known",
                count(prefix)
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}\n{text}");
    run.sigterm();
    run.wait(Duration::from_secs(60)).await;
}
