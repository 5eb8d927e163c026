//! Disaster recovery drills with real servers (docs/recovery.md).
//!
//! The database: a primary whose every commit is flushed to a WAL archive before it returns
//! (`pg_receivewal --synchronous`), a base backup taken mid-drain, the primary destroyed, the
//! backup restored and replayed to the end of the archive, the drain resumed through the same
//! address: every message lands exactly once.
//! The key ring: a replaced key under a known id is refused by `run` and `check`.

use std::time::{Duration, Instant};

use crate::helpers::*;

const DB: &str = "logins";

/// Whether a connection to `url` works and the server accepts writes.
async fn writable(url: &str) -> bool {
    let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        return false;
    };
    tokio::spawn(conn);
    matches!(
        client.query_one("SELECT NOT pg_is_in_recovery()", &[]).await,
        Ok(row) if row.get::<_, bool>(0)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_backup_replayed_to_the_end_of_the_archive_lands_every_message_once() {
    let queue = TestQueue::new(30).await;
    let primary = TempCluster::new();
    let archive = TempCluster::postgres_dir("login-etl-wal-archive");
    let mut receiver = primary.stream_wal_to(&archive);
    let admin = pg_client(&primary.url("postgres")).await;
    wait_until(
        "the WAL receiver streams",
        Duration::from_secs(30),
        || async {
            pg_count(
                &primary.url("postgres"),
                "SELECT count(*) FROM pg_stat_replication",
            )
            .await
                == 1
        },
    )
    .await;
    // From now on a commit returns only once the archive has flushed it: the archive loses
    // nothing the consumer was told is committed (RPO 0 for acknowledged messages).
    for sql in [
        "ALTER SYSTEM SET synchronous_standby_names = 'pg_receivewal'",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    admin
        .batch_execute(&format!("CREATE DATABASE {DB}"))
        .await
        .unwrap();
    let proxy = PgProxy::start(primary.port).await;
    let through_proxy = format!("postgres://postgres@127.0.0.1:{}/{DB}", proxy.port);
    run_ok(binary_for(&queue, &through_proxy).arg("migrate"));

    let bodies = synthetic(20_000, 71);
    let valid = valid_count(&bodies);
    queue.send(&bodies).await;
    let mut run = Spawned::new(
        binary_for(&queue, &through_proxy)
            .env("LOGIN_ETL_LOG", "info")
            .args(["run", "--drain", "--write-retry-seconds", "240"]),
    );
    let a = primary.url(DB);
    let ledger = "SELECT count(*) FROM processed_messages";
    wait_until("4,000 committed", Duration::from_secs(120), || async {
        pg_count(&a, ledger).await >= 4_000
    })
    .await;
    // The consumer's writes wait on a lock while the backup is taken and while the primary is
    // destroyed: both happen mid-drain however fast or slow this machine drains.
    let pause = pg_client(&a).await;
    let hold_writes = "BEGIN; LOCK TABLE processed_messages IN EXCLUSIVE MODE";
    pause.batch_execute(hold_writes).await.unwrap();
    let backup_started = Instant::now();
    let backup = primary.base_backup();
    let backup_took = backup_started.elapsed();
    let at_backup_end = pg_count(&a, ledger).await;
    pause.batch_execute("ROLLBACK").await.unwrap();
    eprintln!("base backup took {backup_took:?}; {at_backup_end} committed when it ended");
    wait_until("1,000 more committed", Duration::from_secs(120), || async {
        pg_count(&a, ledger).await >= at_backup_end + 1_000
    })
    .await;
    // The disaster: the primary and its data directory are gone, mid-drain.
    pause.batch_execute(hold_writes).await.unwrap();
    let acknowledged = pg_count(&a, ledger).await;
    primary.destroy();
    let destroyed = Instant::now();
    let _ = receiver.wait();

    let restored = TempCluster::restored_from(&backup, &archive);
    let b = restored.url(DB);
    wait_until(
        "the restore replays and opens",
        Duration::from_secs(120),
        || writable(&b),
    )
    .await;
    let restore_took = destroyed.elapsed();
    // The restored server keeps `synchronous_standby_names`: archiving resumes into a new
    // archive before writes do (docs/recovery.md), else every commit would wait for it.
    let new_archive = TempCluster::postgres_dir("login-etl-wal-archive");
    let mut new_receiver = restored.stream_wal_to(&new_archive);
    let on_restore = pg_count(&b, ledger).await;
    assert!(
        on_restore >= acknowledged,
        "the restore lost commits: {on_restore} in the ledger, {acknowledged} were committed"
    );
    proxy.switch_to(restored.port);
    wait_until(
        "the first commit after the restore",
        Duration::from_secs(60),
        || async { pg_count(&b, ledger).await > on_restore },
    )
    .await;
    let resumed = destroyed.elapsed();
    let status = run.wait(Duration::from_secs(300)).await;
    assert!(status.success(), "{}", run.log());
    let (rows, quarantined, ledger) = (
        pg_count(&b, "SELECT count(*) FROM user_logins").await,
        pg_count(&b, "SELECT count(*) FROM quarantined_messages").await,
        pg_count(&b, ledger).await,
    );
    assert_eq!((rows, quarantined, ledger), (valid, 20_000 - valid, 20_000));
    assert!(
        at_backup_end < 20_000 && acknowledged < 20_000,
        "the backup and the disaster happened mid-drain"
    );
    assert_eq!(queue.remaining().await, 0);
    drop(restored);
    let _ = new_receiver.wait(); // it ends with its server
    for dir in [&archive, &new_archive, &backup] {
        let _ = std::fs::remove_dir_all(dir);
    }
    eprintln!(
        "restore drill: base backup in {backup_took:?} at {at_backup_end} messages; primary \
         destroyed at {acknowledged}; restored and replayed to {on_restore} in {restore_took:?}; \
         writes resumed {resumed:?} after the loss; every message once"
    );
}

#[tokio::test]
async fn a_replaced_key_under_a_known_id_is_refused_by_run_and_check() {
    let queue = TestQueue::new(30).await;
    let db = TestDb::new().await;
    let original = format!("k1:{}", "1f".repeat(32));
    let replaced = format!("k1:{}", "2e".repeat(32));
    // The binary with this key ring: whether it succeeded, and all it printed.
    let with_key = |key: &str, args: &[&str]| {
        let out = run_binary(
            binary(&queue, &db)
                .env("LOGIN_ETL_MASK_KEY", key)
                .args(args),
        );
        let printed = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), printed)
    };
    let drain = ["run", "--drain"];
    queue.send(&sample_bodies()[..20]).await;
    let (ok, printed) = with_key(&original, &drain);
    assert!(ok, "{printed}");
    let rows: i64 = db.scalar("SELECT count(*) FROM user_logins").await;
    assert!(rows > 0);
    let recorded: String = db
        .scalar("SELECT key_id || ':' || fingerprint FROM mask_key_fingerprints")
        .await;
    assert!(
        recorded.starts_with("k1:") && !recorded.contains("1f1f"),
        "{recorded}"
    );

    // The same id, another key: masks that would never match the stored ones.
    queue.send(&sample_bodies()[20..40]).await;
    let (ok, printed) = with_key(&replaced, &drain);
    assert!(!ok, "{printed}");
    let line = printed
        .lines()
        .find(|l| l.contains("is not the key that masked"))
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(
        line.contains("`k1`") && line.contains("docs/recovery.md"),
        "{line}"
    );
    assert!(
        !printed.contains("2e2e2e") && !printed.contains("1f1f1f"),
        "a key leaked: {printed}"
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM user_logins").await,
        rows,
        "nothing was masked with it"
    );
    assert_eq!(
        queue.remaining().await,
        20,
        "its messages wait for the right key"
    );

    let (ok, report) = with_key(&replaced, &["check"]);
    assert!(
        !ok && report.contains("is not the key that masked"),
        "{report}"
    );
    let (_, report) = with_key(&original, &["check"]);
    assert!(
        report.contains("masking keys match the database's record"),
        "{report}"
    );

    // Rotation is a new key under a new id: accepted, and recorded when it first masks a row.
    let rotated = format!("k2:{},{original}", "2e".repeat(32));
    let (ok, printed) = with_key(&rotated, &drain);
    assert!(ok, "{printed}");
    assert_eq!(queue.remaining().await, 0);
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM mask_key_fingerprints")
            .await,
        2
    );
}
