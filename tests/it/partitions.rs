//! Optional monthly partitions of `user_logins` (`migrate --partition-by-month`): for a new
//! deployment, and converting an existing table; writes, the duplicates report and reveal keep
//! working, and no date fails a write.

use chrono::Utc;
use login_etl::transform;

use crate::helpers::*;

async fn partitions(db: &TestDb) -> Vec<String> {
    db.client()
        .await
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'user_logins'::regclass ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn this_month_partition() -> String {
    Utc::now().format("user_logins_y%Ym%m").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_deployment_is_partitioned_and_the_sample_lands_reports_and_reveals() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let out = run_binary(binary(&queue, &db).args(["migrate", "--partition-by-month"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("partitioned by month: 0 rows copied"),
        "{stdout}"
    );
    let parts = partitions(&db).await;
    assert_eq!(parts.len(), 5, "this month, 3 ahead, default: {parts:?}");
    assert!(
        parts.contains(&this_month_partition()) && parts.contains(&"user_logins_default".into())
    );

    // aes-siv, so that reveal can be checked too.
    queue.send(&sample_bodies()).await;
    run_ok(
        binary(&queue, &db)
            .env("LOGIN_ETL_MASK_STRATEGY", "aes-siv")
            .args(["run", "--drain"]),
    );
    assert_landed(&db, &queue, 99, 1).await;
    let in_month: i64 = db
        .client()
        .await
        .query_one(
            &format!("SELECT count(*) FROM {}", this_month_partition()),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        in_month, 99,
        "COPY routed every row to this month's partition"
    );

    run_ok(binary(&queue, &db).args(["report", "duplicates", "--format", "json"]));
    let first: serde_json::Value = serde_json::from_str(&sample_bodies()[0]).unwrap();
    let user = first["user_id"].as_str().unwrap();
    let reveal = run_binary(
        binary(&queue, &db)
            .env("LOGIN_ETL_MASK_STRATEGY", "aes-siv")
            .args(["reveal", "--reason", "partition test", "--user-id", user]),
    );
    let revealed = String::from_utf8_lossy(&reveal.stdout);
    assert!(
        reveal.status.success(),
        "{}",
        String::from_utf8_lossy(&reveal.stderr)
    );
    assert!(
        revealed.contains(first["ip"].as_str().unwrap()),
        "{revealed}"
    );

    // Running migrate again converts nothing and keeps the partitions.
    let again = run_binary(binary(&queue, &db).args(["migrate", "--partition-by-month"]));
    assert!(String::from_utf8_lossy(&again.stdout).contains("partitioned already"));
    assert_eq!(partitions(&db).await, parts);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_table_is_converted_keeping_rows_indexes_and_grants() {
    let db = TestDb::new().await;
    let mut sink = db.sink();
    sink.migrate().await.unwrap();
    // Rows over three months, one with no date, under the documented least-privilege grants.
    let bodies = synthetic(300, 5);
    let outcomes: Vec<_> = bodies
        .iter()
        .enumerate()
        .flat_map(|(i, b)| {
            transform::process(
                &envelope(&format!("m{i}"), b, (i % 3) as i64 * 31),
                &masker(),
                Utc::now(),
            )
        })
        .collect();
    let written = sink.write_batch(&outcomes).await.unwrap().rows;
    let client = db.client().await;
    client
        .batch_execute("INSERT INTO user_logins (user_id, create_date) VALUES ('no-date', NULL)")
        .await
        .unwrap();
    let (role, _) = least_privilege_role(&db, "part").await;
    let snapshot = "SELECT string_agg(t::text, '|' ORDER BY t::text) FROM user_logins t";
    let before: String = client.query_one(snapshot, &[]).await.unwrap().get(0);

    let done = db.operator().partition_by_month().await.unwrap();
    assert!(done.converted);
    assert_eq!(done.rows_copied, written + 1);
    let after: String = client.query_one(snapshot, &[]).await.unwrap().get(0);
    assert_eq!(before, after, "every row, unchanged");
    let parts = partitions(&db).await;
    // 31 and 62 days ago are two earlier months; then this month, 3 ahead, and DEFAULT.
    assert!(
        parts.len() >= 7,
        "past months, the coming ones, default: {parts:?}"
    );
    let in_default: i64 = client
        .query_one("SELECT count(*) FROM user_logins_default", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_default, 1, "the dateless row");
    let indexes: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'user_logins'
             AND indexname IN ('user_logins_device_users', 'user_logins_ip_users')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexes, 2);
    let may_insert: bool = client
        .query_one(
            "SELECT has_table_privilege($1, 'user_logins', 'INSERT')",
            &[&role],
        )
        .await
        .unwrap()
        .get(0);
    assert!(may_insert, "the writer role's grant survived");

    // A date no partition covers (two years ahead) still lands: in the DEFAULT partition.
    let far = transform::process(&envelope("m9999", &bodies[0], -730), &masker(), Utc::now());
    assert_eq!(sink.write_batch(&far).await.unwrap().rows, 1);
}
