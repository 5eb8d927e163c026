//! Throughput benchmark against the real local stack (LocalStack SQS + PostgreSQL).
//!
//! Measures, in one run, each stage alone and the whole pipeline, and prints the ratios, so the
//! numbers mean something on a shared, noisy machine:
//!   transform   decode + validate + mask, CPU only
//!   db write    the sink alone: ledger + binary COPY per 500-message transaction
//!   sqs ceiling receive + delete with the same receivers and nothing else (the emulator's limit)
//!   pipeline    `run --drain` end to end
//!
//! Run with `scripts/bench.sh [--messages N] [--receivers R]`.

use std::time::{Duration, Instant};

use login_etl::mask::{keys, KeyRing, Masker};
use login_etl::pipeline::{self, PipelineSettings};
use login_etl::sample::{self, SampleSpec};
use login_etl::sink::{DbSettings, PgSink};
use login_etl::source::{Envelope, MessageId, ReceiptHandle, SqsSettings, SqsSource};
use login_etl::transform;
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

const DB: &str = "login_etl_bench";
const QUEUE: &str = "login-etl-bench";

struct Args {
    messages: usize,
    receivers: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        messages: 20_000,
        receivers: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse().ok()).expect("a number");
        match arg.as_str() {
            "--messages" => args.messages = value(),
            "--receivers" => args.receivers = value(),
            "--bench" => {}
            other => panic!("unknown argument {other}; use --messages N --receivers R"),
        }
    }
    args
}

/// Two statements: DROP DATABASE can't share an (implicit) transaction.
async fn recreate_database(admin: &tokio_postgres::Client) {
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {DB}"))
        .await
        .unwrap();
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let admin_url = std::env::var("LOGIN_ETL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let endpoint = std::env::var("LOGIN_ETL_TEST_SQS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:4566".into());
    let db_url = format!(
        "{}/{DB}",
        admin_url.rsplit_once('/').expect("URL ends with /db").0
    );

    let (admin, conn) = tokio_postgres::connect(&admin_url, NoTls)
        .await
        .expect("PostgreSQL up");
    tokio::spawn(conn);
    recreate_database(&admin).await;
    let settings = SqsSettings {
        endpoint: Some(endpoint.parse().expect("an http:// URL")),
        region: Some("us-east-1".into()),
        queue_url: None,
        queue_name: QUEUE.into(),
        protocol: Default::default(),
        s3_endpoint: None,
    };
    let source = SqsSource::create(&settings).await.expect("LocalStack up");
    source.purge().await.ok();

    let masker = Masker::hmac(&KeyRing::parse(&keys::generate("k1").unwrap()).unwrap());
    let bodies = sample::generate(&SampleSpec {
        count: args.messages,
        bad_share: 0.01,
        seed: 1,
    });
    println!(
        "login-etl benchmark: {} messages (1 % bad), {} receivers, batch 500, {} cores",
        args.messages,
        args.receivers,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // 1. transform alone.
    let envelopes: Vec<Envelope> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| Envelope {
            message_id: MessageId(format!("bench-{i}")),
            receipt_handle: ReceiptHandle(String::new()),
            body: body.clone(),
            sent_at: chrono::Utc::now(),
            receive_count: 1,
            undated_copy: false,
            chunk_of: None,
            received: Instant::now(),
        })
        .collect();
    let now = chrono::Utc::now();
    let started = Instant::now();
    let outcomes: Vec<_> = envelopes
        .iter()
        .flat_map(|e| transform::process(e, &masker, now))
        .collect();
    let transform_rate = rate(outcomes.len(), started.elapsed());

    // 2. sink alone.
    let mut sink = PgSink::new(&DbSettings::from_url(&db_url)).unwrap();
    sink.migrate().await.unwrap();
    let started = Instant::now();
    for chunk in outcomes.chunks(500) {
        sink.write_batch(chunk).await.unwrap();
    }
    let db_rate = rate(outcomes.len(), started.elapsed());
    recreate_database(&admin).await;

    // 3. SQS ceiling: receive + delete only.
    let started = Instant::now();
    source.send(&bodies).await.unwrap();
    let send_rate = rate(bodies.len(), started.elapsed());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.receivers {
        let source = source.clone();
        tasks.spawn(async move {
            let mut n = 0;
            loop {
                let got = source.receive(10, Duration::from_secs(1)).await.unwrap();
                if got.is_empty() {
                    return n;
                }
                let receipts: Vec<ReceiptHandle> =
                    got.iter().map(|e| e.receipt_handle.clone()).collect();
                source.delete(&receipts).await.unwrap();
                n += got.len();
            }
        });
    }
    let mut received = 0;
    while let Some(n) = tasks.join_next().await {
        received += n.unwrap();
    }
    // The last receiver's empty 1 s poll is not work; subtract it.
    let ceiling_time = started.elapsed().saturating_sub(Duration::from_secs(1));
    let ceiling_rate = rate(received, ceiling_time);

    // 4. the whole pipeline.
    source.send(&bodies).await.unwrap();
    let sink = PgSink::new(&DbSettings::from_url(&db_url)).unwrap();
    let summary = pipeline::run(
        source.clone(),
        {
            let mut s = sink;
            s.migrate().await.unwrap();
            s
        },
        masker.clone(),
        PipelineSettings {
            receivers: args.receivers,
            drain_idle: Some(Duration::from_secs(1)),
            ..PipelineSettings::default()
        },
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.written + summary.quarantined) as usize,
        args.messages,
        "the books balance"
    );
    let pipeline_rate = summary.messages_per_second();

    // 5. the binary, with and without --metrics-addr, alternately (five times each: the emulator
    //    is noisy, so the medians are compared).
    let mut binary_rates = [Vec::new(), Vec::new()];
    for round in 0..10 {
        let with_metrics = round % 2 == 1;
        source.send(&bodies).await.unwrap();
        let extra: &[&str] = if with_metrics {
            &["--metrics-addr", "127.0.0.1:0"]
        } else {
            &[]
        };
        binary_rates[usize::from(with_metrics)].push(run_binary(
            &endpoint,
            &db_url,
            args.receivers,
            extra,
        ));
    }

    // 6. --sqs-protocol json (the SDK's own HTTP client), auto (the translator installed, passing
    //    JSON through) and query (every call translated) against the same emulator, which speaks
    //    both protocols: three rounds of the three, interleaved. Then a query-only LocalStack 1.4
    //    with auto-detection, if scripts/query-sqs-up.sh started it.
    const PROTOCOLS: [&str; 3] = ["json", "auto", "query"];
    let mut protocol_rates = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..9 {
        source.send(&bodies).await.unwrap();
        protocol_rates[round % 3].push(run_binary(
            &endpoint,
            &db_url,
            args.receivers,
            &["--sqs-protocol", PROTOCOLS[round % 3]],
        ));
    }
    // 7. Scale-out: 1, 2 and 4 processes draining the same queue (each with --receivers R).
    let mut process_rates = Vec::new();
    for processes in [1, 2, 4] {
        source.send(&bodies).await.unwrap();
        process_rates.push((
            processes,
            run_processes(&endpoint, &db_url, args.receivers, processes, bodies.len()),
        ));
    }

    let query_only_endpoint = std::env::var("LOGIN_ETL_TEST_QUERY_SQS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:4567".into());
    let query_only = SqsSettings {
        endpoint: Some(query_only_endpoint.parse().expect("an http:// URL")),
        ..settings.clone()
    };
    let query_only_rate = match SqsSource::create(&query_only).await {
        Ok(legacy) => {
            legacy.purge().await.ok();
            legacy.send(&bodies).await.unwrap();
            Some(run_binary(
                &query_only_endpoint,
                &db_url,
                args.receivers,
                &[],
            ))
        }
        Err(_) => None,
    };
    let median = |rates: &[f64]| {
        let mut sorted = rates.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let (metrics_off, metrics_on) = (median(&binary_rates[0]), median(&binary_rates[1]));

    println!();
    println!("{:<44} {:>12}", "stage", "messages/s");
    println!(
        "{:<44} {:>12.0}",
        "transform (decode + validate + mask, 1 core)", transform_rate
    );
    println!(
        "{:<44} {:>12.0}",
        "db write (ledger + COPY, 500/transaction)", db_rate
    );
    println!(
        "{:<44} {:>12.0}",
        "sqs send (SendMessageBatch, 8 in flight)", send_rate
    );
    println!(
        "{:<44} {:>12.0}",
        "sqs ceiling (receive + delete only)", ceiling_rate
    );
    println!(
        "{:<44} {:>12.0}",
        "pipeline (run --drain, end to end)", pipeline_rate
    );
    println!();
    println!(
        "pipeline / sqs ceiling   = {:.2}",
        pipeline_rate / ceiling_rate
    );
    println!(
        "db write / pipeline      = {:.1}x headroom",
        db_rate / pipeline_rate
    );
    println!(
        "transform / pipeline     = {:.0}x headroom",
        transform_rate / pipeline_rate
    );
    println!("pipeline summary: {summary}");
    println!();
    println!(
        "binary run --drain, metrics off: median {:.0} messages/s ({})",
        metrics_off,
        join(&binary_rates[0])
    );
    println!(
        "binary run --drain, metrics on:  median {:.0} messages/s ({})",
        metrics_on,
        join(&binary_rates[1])
    );
    println!(
        "metrics on / off (medians) = {:.3}",
        metrics_on / metrics_off
    );
    println!();
    for (name, rates) in PROTOCOLS.iter().zip(&protocol_rates) {
        println!(
            "binary run --drain, --sqs-protocol {name:<5}: median {:.0} messages/s ({})",
            median(rates),
            join(rates)
        );
    }
    let json = median(&protocol_rates[0]);
    println!(
        "auto / json = {:.3}, query / json = {:.3} (same emulator, medians)",
        median(&protocol_rates[1]) / json,
        median(&protocol_rates[2]) / json
    );
    println!();
    let single = process_rates[0].1;
    for (processes, rate) in &process_rates {
        println!(
            "{processes} process(es) on one queue, run --drain: {rate:.0} messages/s ({:.2}x one process)",
            rate / single
        );
    }
    match query_only_rate {
        Some(rate) => println!(
            "binary run --drain on query-only LocalStack 1.4 (auto-detected): {rate:.0} messages/s"
        ),
        None => println!("query-only LocalStack 1.4 not running: run scripts/query-sqs-up.sh"),
    }

    source.purge().await.ok();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .await
        .ok();
}

fn join(rates: &[f64]) -> String {
    let parts: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    parts.join(", ")
}

/// Drain the queue with the release binary; its messages/s from the summary line.
/// `login-etl run --drain` on the benchmark queue and database, quiet, with a fixed key.
fn drain_command(endpoint: &str, db_url: &str, receivers: usize) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_login-etl"));
    cmd.env("LOGIN_ETL_SQS_ENDPOINT", endpoint)
        .env("LOGIN_ETL_QUEUE_NAME", QUEUE)
        .env("LOGIN_ETL_DATABASE_URL", db_url)
        .env("LOGIN_ETL_MASK_KEY", "ab".repeat(32))
        .env("LOGIN_ETL_RECEIVERS", receivers.to_string())
        .env("LOGIN_ETL_DRAIN_IDLE_SECONDS", "1")
        .env("LOGIN_ETL_LOG", "warn")
        .args(["run", "--drain"]);
    cmd
}

fn run_binary(endpoint: &str, db_url: &str, receivers: usize, extra_args: &[&str]) -> f64 {
    let out = drain_command(endpoint, db_url, receivers)
        .args(extra_args)
        .output()
        .expect("the login-etl binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .rsplit(", ")
        .next()
        .and_then(|last| last.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {stdout}"))
}

/// `processes` release binaries draining the queue together; messages/s over the wall time until
/// the last exits (minus the final 1 s idle wait that proves the queue empty).
fn run_processes(
    endpoint: &str,
    db_url: &str,
    receivers: usize,
    processes: usize,
    messages: usize,
) -> f64 {
    let started = std::time::Instant::now();
    let children: Vec<_> = (0..processes)
        .map(|_| {
            drain_command(endpoint, db_url, receivers)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("the login-etl binary runs")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let wall = started.elapsed().saturating_sub(Duration::from_secs(1));
    rate(messages, wall)
}
