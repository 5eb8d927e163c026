//! How login-etl's tables behave as they grow, against the real local PostgreSQL, in one run:
//!
//!   1. ledger pruning vs the write path: 500-message batch commit latency with no prune running,
//!      then while `prune_ledger` deletes 2,000,000 expired ids, then without again;
//!   2. `user_logins` plain vs partitioned by month, N rows (default 5,000,000) over 12 months:
//!      load throughput (the production write path: ledger + binary COPY, 500 per transaction),
//!      the duplicates report, and removing one month (DELETE vs DROP / DETACH of a partition).
//!
//! Run with `scripts/bench-growth.sh [--rows N]`.

use std::time::{Duration, Instant};

use chrono::Utc;
use login_etl::mask::{keys, KeyRing, Masker};
use login_etl::sample::{self, SampleSpec};
use login_etl::sink::{DbSettings, PgOperator, PgSink};
use login_etl::source::{Envelope, MessageId, ReceiptHandle};
use login_etl::transform::{self, Outcome};
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 500;

fn rows_arg() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000_000)
}

async fn admin() -> tokio_postgres::Client {
    let url = std::env::var("LOGIN_ETL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (client, conn) = tokio_postgres::connect(&url, NoTls)
        .await
        .expect("PostgreSQL up");
    tokio::spawn(conn);
    client
}

/// A fresh database; its URL.
async fn fresh(admin: &tokio_postgres::Client, name: &str) -> String {
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// `count` masked outcomes, message ids prefixed by `tag`, sent `days_ago` days ago (spread
/// evenly over `months` months when `months` > 0).
fn outcomes(masker: &Masker, tag: &str, start: usize, count: usize, months: i64) -> Vec<Outcome> {
    let bodies = sample::generate(&SampleSpec {
        count,
        bad_share: 0.01,
        seed: start as u64,
    });
    bodies
        .iter()
        .enumerate()
        .flat_map(|(i, body)| {
            let n = start + i;
            let days_ago = if months > 0 {
                (n as i64 * 7) % (months * 30)
            } else {
                0
            };
            let envelope = Envelope {
                message_id: MessageId(format!("{tag}-{n}")),
                receipt_handle: ReceiptHandle(String::new()),
                body: body.clone(),
                sent_at: Utc::now() - chrono::Duration::days(days_ago),
                receive_count: 1,
                undated_copy: false,
                chunk_of: None,
                received: Instant::now(),
            };
            transform::process(&envelope, masker, Utc::now())
        })
        .collect()
}

fn percentiles(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    format!(
        "p50 {:6.1} ms   p95 {:6.1} ms   max {:6.1} ms",
        at(0.5),
        at(0.95),
        at(1.0)
    )
}

async fn commit_latencies(
    sink: &mut PgSink,
    masker: &Masker,
    tag: &str,
    batches: usize,
) -> Vec<f64> {
    let mut ms = Vec::new();
    for b in 0..batches {
        let batch = outcomes(masker, tag, b * BATCH, BATCH, 0);
        let started = Instant::now();
        sink.write_batch(&batch).await.unwrap();
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    ms
}

async fn ledger_pruning(admin: &tokio_postgres::Client, masker: &Masker) {
    const EXPIRED: i64 = 2_000_000;
    let url = fresh(admin, "login_etl_growth_ledger").await;
    let mut sink = PgSink::new(&DbSettings::from_url(&url)).unwrap();
    sink.migrate().await.unwrap();
    let db = client(&url).await;
    db.batch_execute(&format!(
        "INSERT INTO processed_messages (message_id, outcome, processed_at)
         SELECT 'expired-' || g, 'row', now() - interval '30 days' - g * interval '1 ms'
         FROM generate_series(1, {EXPIRED}) g"
    ))
    .await
    .unwrap();
    // Its own statement: VACUUM can't run inside the implicit transaction of a multi-statement call.
    db.batch_execute("VACUUM ANALYZE processed_messages")
        .await
        .unwrap();
    let before = commit_latencies(&mut sink, masker, "before", 40).await;

    let mut pruner = PgOperator::new(&DbSettings::from_url(&url)).unwrap();
    let cutoff = Utc::now() - chrono::Duration::days(15);
    let prune = tokio::spawn(async move {
        let started = Instant::now();
        let n = pruner
            .prune_ledger(cutoff, &CancellationToken::new())
            .await
            .unwrap();
        (n, started.elapsed())
    });
    let mut during = Vec::new();
    let mut round = 0;
    while !prune.is_finished() {
        during.extend(commit_latencies(&mut sink, masker, &format!("during{round}"), 10).await);
        round += 1;
    }
    let (pruned, took) = prune.await.unwrap();
    let after = commit_latencies(&mut sink, masker, "after", 40).await;

    println!(
        "1. ledger pruning vs the write path ({BATCH}-message batches, ledger + COPY + commit)"
    );
    println!(
        "   no prune running      ({:3} batches): {}",
        before.len(),
        percentiles(before)
    );
    println!(
        "   while pruning         ({:3} batches): {}",
        during.len(),
        percentiles(during)
    );
    println!(
        "   no prune running      ({:3} batches): {}",
        after.len(),
        percentiles(after)
    );
    println!(
        "   pruned {pruned} expired ids in {:.1} s ({:.0} ids/s, {} per transaction)",
        took.as_secs_f64(),
        pruned as f64 / took.as_secs_f64(),
        login_etl::sink::PRUNE_BATCH
    );
}

async fn timed_ms(client: &tokio_postgres::Client, sql: &str) -> f64 {
    let started = Instant::now();
    client.batch_execute(sql).await.unwrap();
    started.elapsed().as_secs_f64() * 1000.0
}

async fn load(url: &str, masker: &Masker, rows: usize, partitioned: bool) -> Duration {
    let settings = DbSettings::from_url(url);
    let mut sink = PgSink::new(&settings).unwrap();
    sink.migrate().await.unwrap();
    if partitioned {
        let mut operator = PgOperator::new(&settings).unwrap();
        operator.partition_by_month().await.unwrap();
        // The history being loaded spans 12 months back: their partitions first (a backfill).
        let first = (Utc::now() - chrono::Duration::days(370)).date_naive();
        operator.ensure_partitions_from(Some(first)).await.unwrap();
    }
    let chunk = 50_000;
    let mut busy = Duration::ZERO;
    for start in (0..rows).step_by(chunk) {
        let batch = outcomes(masker, "load", start, chunk.min(rows - start), 12);
        let started = Instant::now();
        for part in batch.chunks(BATCH) {
            sink.write_batch(part).await.unwrap();
        }
        busy += started.elapsed();
    }
    client(url)
        .await
        .batch_execute("VACUUM ANALYZE")
        .await
        .unwrap();
    busy
}

async fn plain_vs_partitioned(admin: &tokio_postgres::Client, masker: &Masker, rows: usize) {
    println!();
    println!("2. user_logins plain vs partitioned by month, {rows} messages over 12 months");
    println!("   {:<44} {:>14} {:>14}", "", "plain", "partitioned");
    let mut results = Vec::new();
    for (name, partitioned) in [
        ("login_etl_growth_plain", false),
        ("login_etl_growth_parts", true),
    ] {
        let url = fresh(admin, name).await;
        let busy = load(&url, masker, rows, partitioned).await;
        let db = client(&url).await;
        let mut operator = PgOperator::new(&DbSettings::from_url(&url)).unwrap();
        let started = Instant::now();
        operator.shared_devices(20).await.unwrap();
        operator.shared_ips(20).await.unwrap();
        let report = started.elapsed().as_secs_f64() * 1000.0;
        // The oldest full month: DELETE its rows, or drop its partition.
        let month = (Utc::now() - chrono::Duration::days(300))
            .format("%Y-%m-01")
            .to_string();
        let in_month: i64 = db
            .query_one(
                &format!("SELECT count(*) FROM user_logins WHERE create_date >= '{month}' AND create_date < date '{month}' + interval '1 month'"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let remove = if partitioned {
            let part = (Utc::now() - chrono::Duration::days(300))
                .format("user_logins_y%Ym%m")
                .to_string();
            timed_ms(
                &db,
                &format!("ALTER TABLE user_logins DETACH PARTITION {part}; DROP TABLE {part}"),
            )
            .await
        } else {
            timed_ms(&db, &format!("DELETE FROM user_logins WHERE create_date >= '{month}' AND create_date < date '{month}' + interval '1 month'")).await
        };
        let size: String = db
            .query_one(
                "SELECT pg_size_pretty(pg_database_size(current_database()))",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        println!(
            "   {name}: load {:.0} messages/s, report {report:.0} ms, {in_month} rows removed in {remove:.0} ms, {size}",
            rows as f64 / busy.as_secs_f64()
        );
        results.push((
            rows as f64 / busy.as_secs_f64(),
            report,
            in_month,
            remove,
            size,
        ));
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .ok();
    }
    let (p, q) = (&results[0], &results[1]);
    println!(
        "   {:<44} {:>14.0} {:>14.0}",
        "load, messages/s (ledger + COPY, 500/tx)", p.0, q.0
    );
    println!(
        "   {:<44} {:>14.0} {:>14.0}",
        "duplicates report (devices + ips), ms", p.1, q.1
    );
    println!(
        "   {:<44} {:>14} {:>14}",
        "rows in the removed month", p.2, q.2
    );
    println!(
        "   {:<44} {:>14.0} {:>14.0}",
        "remove that month, ms (DELETE | DETACH+DROP)", p.3, q.3
    );
    println!(
        "   {:<44} {:>14} {:>14}",
        "database size before removal", p.4, q.4
    );
    println!(
        "   partitioned / plain: load {:.2}, report {:.2}, month removal {:.4}",
        q.0 / p.0,
        q.1 / p.1,
        q.3 / p.3
    );
}

#[tokio::main]
async fn main() {
    let rows = rows_arg();
    let masker = Masker::hmac(&KeyRing::parse(&keys::generate("k1").unwrap()).unwrap());
    let admin = admin().await;
    println!(
        "login-etl growth benchmark, {} cores\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    ledger_pruning(&admin, &masker).await;
    plain_vs_partitioned(&admin, &masker, rows).await;
    admin
        .batch_execute("DROP DATABASE IF EXISTS login_etl_growth_ledger WITH (FORCE)")
        .await
        .ok();
}
