//! The second attack review of crypto-shredding (helper-32), kept as regressions: each test
//! states the promise it holds. A caller's function never runs as the owner inside a shred; a
//! key created while a shred commits is shredded; only the owner's audited functions change a
//! key; built-in roles get no right to shred; a key the ring cannot open stops the consumer in
//! one line; a shred at REPEATABLE READ is refused.

use crate::helpers::*;

/// Keys for `2026-01` (to be shredded) and `2026-11` (the current quarter: must stay live), as
/// the owner stores them (the content is opaque to the database).
async fn two_live_keys(db: &TestDb) {
    (db.client().await)
        .batch_execute(
            "INSERT INTO period_keys (period, wrapped_by, wrapped) VALUES \
             ('2026-01', 'k1', '\\x01'), ('2026-11', 'k1', '\\x02')",
        )
        .await
        .unwrap();
}

/// Promise: only audited paths destroy keys; the SECURITY DEFINER function runs nothing a
/// caller chose. `login_etl_shred_audited` (and the guard trigger) call
/// `public.login_etl_period_end(period)` with `period varchar(32)`: a role that may create in
/// schema `public` (every role on a database created before PostgreSQL 15 and upgraded, where
/// PUBLIC keeps CREATE on `public`) adds `public.login_etl_period_end(varchar)`, an exact match
/// that PostgreSQL prefers to the owner's `(text)`. The next shred runs it as the owner: here it
/// destroys every key, the current month's too, with no audit naming them.
#[tokio::test(flavor = "multi_thread")]
async fn a_callers_overload_of_period_end_never_runs_inside_a_shred() {
    let db = TestDb::new().await;
    db.operator().migrate().await.unwrap();
    two_live_keys(&db).await;
    let (writer, writer_url) = least_privilege_role(&db, "r2_w").await;
    let (operator, op_url) = crate::audit_roles::role_from(
        &db,
        include_str!("../../docs/least-privilege-operator.sql"),
        "login_etl_operator",
        "r2_op",
    )
    .await;
    // A database whose schema `public` kept PostgreSQL 14's ACL (PUBLIC may create there).
    (db.client().await)
        .batch_execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        .await
        .unwrap();
    let w = pg_client(&writer_url).await;
    w.batch_execute(
        "CREATE FUNCTION public.login_etl_period_end(p varchar) RETURNS timestamptz \
         LANGUAGE plpgsql AS $$ BEGIN \
           IF current_user::text <> session_user::text THEN \
             UPDATE public.period_keys SET wrapped = NULL, wrapped_by = NULL \
               WHERE wrapped IS NOT NULL; \
           END IF; \
           RETURN public.login_etl_period_end(p::text); \
         END $$",
    )
    .await
    .unwrap();
    // The operator's ordinary, audited shred of January.
    let op = pg_client(&op_url).await;
    let row = op
        .query_one(
            "SELECT periods FROM login_etl_shred_audited('2026-02-01T00:00:00Z', 'os', 'ops', \
             'retention of January')",
            &[],
        )
        .await
        .unwrap();
    let audited: Vec<String> = row.get(0);
    let november_live: bool = db
        .scalar("SELECT wrapped IS NOT NULL FROM period_keys WHERE period = '2026-11'")
        .await;
    for role in [writer, operator] {
        crate::audit_roles::drop_role(&db, &role).await;
    }
    assert_eq!(audited, vec!["2026-01".to_string()]);
    assert!(
        november_live,
        "the key of 2026-11 was destroyed by a caller's function run as the owner; the shred \
         audited only {audited:?}"
    );
}

/// Promise: `shred --before T` shreds every period ending by T, so no key of such a period is
/// live after it (reveal, report privacy and rekey read `period_keys` as stored). A writer that
/// creates a key for January while the shred's transaction is open (after its SELECT of the
/// periods, before its commit) reads no horizon yet, and nothing in the shred locks
/// `period_keys` against inserts: the key stays live behind the horizon.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_created_while_a_shred_commits_is_stored_shredded() {
    let db = TestDb::new().await;
    db.operator().migrate().await.unwrap();
    let (writer, writer_url) = least_privilege_role(&db, "r2_w").await;
    let owner = db.client().await;
    owner.batch_execute("BEGIN").await.unwrap();
    owner
        .query_one(
            "SELECT periods FROM login_etl_shred_audited('2026-02-01T00:00:00Z', 'os', 'ops', 'r')",
            &[],
        )
        .await
        .unwrap();
    // The writer's CREATE (sink::postgres::period_keys), autocommitted, during the shred: it
    // waits for the shred's lock on period_keys, then meets the horizon.
    let w = pg_client(&writer_url).await;
    let insert = tokio::spawn(async move {
        w.execute(
            "INSERT INTO period_keys (period, wrapped_by, wrapped) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) \
             ON CONFLICT (period) DO NOTHING",
            &[&vec!["2026-01"], &vec!["k1"], &vec![vec![1u8; 48]]],
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let waited = !insert.is_finished();
    owner.batch_execute("COMMIT").await.unwrap();
    let inserted = insert.await.unwrap();
    let live: bool = db
        .scalar("SELECT wrapped IS NOT NULL FROM period_keys WHERE period = '2026-01'")
        .await;
    let seen = db
        .operator()
        .period_keys_of(&["2026-01".to_string()])
        .await
        .unwrap();
    crate::audit_roles::drop_role(&db, &writer).await;
    assert!(waited, "the writer's insert waits for the shred");
    assert!(inserted.is_ok(), "{inserted:?}");
    assert!(seen[0].wrapped.is_none(), "{seen:?}");
    assert!(
        !live,
        "period 2026-01 ends before the horizon the shred recorded, yet its key is live; \
         reveal reads it as {seen:?}"
    );
}

/// Promise: only audited paths destroy keys. The operator role (docs/least-privilege-operator.sql,
/// and migration 22's loop) holds `UPDATE (wrapped_by, wrapped)` on `period_keys` for rekey's
/// re-wrap; the guard refuses only NULL. Overwriting a live key with anything else destroys it
/// just as well, with no audit row and no horizon.
#[tokio::test(flavor = "multi_thread")]
async fn an_operator_cannot_overwrite_a_live_key() {
    let db = TestDb::new().await;
    db.operator().migrate().await.unwrap();
    two_live_keys(&db).await;
    let (operator, op_url) = crate::audit_roles::role_from(
        &db,
        include_str!("../../docs/least-privilege-operator.sql"),
        "login_etl_operator",
        "r2_op",
    )
    .await;
    let op = pg_client(&op_url).await;
    let overwritten = op
        .execute(
            "UPDATE period_keys SET wrapped = '\\x00', wrapped_by = 'k1' WHERE period = '2026-11'",
            &[],
        )
        .await;
    let audits: i64 = db
        .scalar("SELECT count(*) FROM privacy_operations WHERE operation = 'shred'")
        .await;
    crate::audit_roles::drop_role(&db, &operator).await;
    assert!(
        overwritten.is_err(),
        "the operator replaced the key of 2026-11 ({audits} shred audit rows): every value \
         sealed under it is gone for good, unaudited"
    );
}

/// Promise: least privilege on upgraded databases. Migration 22's second loop grants shredding
/// (and `UPDATE (wrapped_by, wrapped)` on `period_keys`) to every non-superuser role for which
/// `has_column_privilege(.., 'masked_ip', 'UPDATE')` holds. The predefined `pg_write_all_data`
/// holds it implicitly, so every member of it (backup restores, ETL tools) may now shred.
#[tokio::test(flavor = "multi_thread")]
async fn pg_write_all_data_gets_no_right_to_shred() {
    let db = TestDb::new().await;
    db.operator().migrate().await.unwrap();
    let may: bool = db
        .scalar(
            "SELECT has_function_privilege('pg_write_all_data', \
             'login_etl_shred_audited(timestamptz, text, text, text)', 'EXECUTE')",
        )
        .await;
    assert!(
        !may,
        "pg_write_all_data (and its members) may run login_etl_shred_audited"
    );
}

/// Promise: a permanent fault stops at once with one actionable line, and nothing is deleted.
/// A period key wrapped by a ring key this consumer does not hold (a consumer on the rotated
/// ring made it; or the row was altered).
#[tokio::test(flavor = "multi_thread")]
async fn a_period_key_wrapped_by_a_foreign_key_stops_the_consumer_with_one_line() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    db.operator().migrate().await.unwrap();
    (db.client().await)
        .batch_execute(
            "INSERT INTO period_keys (period, wrapped_by, wrapped) VALUES \
             ('2026-01', 'k9', '\\x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30')",
        )
        .await
        .unwrap();
    let body = serde_json::json!({"version": "0", "id": "ev-1", "detail-type": "UserLogin",
        "source": "app.auth", "time": "2026-01-10T08:30:00Z", "detail": {"user_id": "alice",
        "device_type": "ios", "ip": "203.0.113.9", "device_id": "dev-a"}})
    .to_string();
    queue.send(&[body]).await;
    let policy = format!(
        "{}/examples/policies/monthly-links.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let started = std::time::Instant::now();
    let out = run_binary(
        binary(&queue, &db)
            .env(
                "LOGIN_ETL_MASK_KEY",
                "k1:7171717171717171717171717171717171717171717171717171717171717171",
            )
            .env("LOGIN_ETL_LOG", "warn")
            .args(["run", "--drain", "--policy", &policy]),
    );
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let rows: i64 = db.scalar("SELECT count(*) FROM user_logins").await;
    queue.until_none_in_flight().await;
    let left = queue.remaining().await;
    println!("exit {:?} after {took:?}\n{stderr}", out.status.code());
    assert!(!out.status.success(), "{stderr}");
    assert_eq!((rows, left), (0, 1), "nothing written, nothing deleted");
    assert!(
        took < std::time::Duration::from_secs(20),
        "stopped after {took:?}"
    );
    assert!(stderr.contains("k9"), "{stderr}");
}

/// Promise: a shredded period's aes-siv values can never be revealed afterwards. The shred
/// function reads the periods to destroy with the transaction's snapshot; `erase`'s function
/// refuses anything but READ COMMITTED for that reason, the shred's does not. Called at
/// REPEATABLE READ (a DBA's psql session, `default_transaction_isolation` set on the role or the
/// database) after any statement, it misses a key made and used after that statement: the
/// horizon is recorded, the key stays live, and `reveal`'s reading (`period_keys_of`, which
/// trusts a live row whatever the horizon) opens the January row.
#[tokio::test(flavor = "multi_thread")]
async fn a_shred_at_repeatable_read_is_refused() {
    use login_etl::mask::{new_period_key, period_masker, Field, KeyRing};
    let db = TestDb::new().await;
    db.operator().migrate().await.unwrap();
    let ring =
        KeyRing::parse("k1:7171717171717171717171717171717171717171717171717171717171717171")
            .unwrap();
    let shredder = db.client().await;
    shredder
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM period_keys")
        .await
        .unwrap();
    // A consumer makes January's key and commits a row sealed under it.
    let key = new_period_key(&ring, "2026-01");
    let mask = period_masker(&ring, "2026-01", &key)
        .unwrap()
        .mask(Field::Ip, "203.0.113.9");
    let writer = db.client().await;
    writer
        .execute(
            "INSERT INTO period_keys (period, wrapped_by, wrapped) VALUES ('2026-01', $1, $2)",
            &[&key.wrapped_by, &key.sealed],
        )
        .await
        .unwrap();
    writer
        .execute(
            "INSERT INTO user_logins (user_id, masked_ip, period) VALUES ('alice', $1, '2026-01')",
            &[&mask],
        )
        .await
        .unwrap();
    // The shred of January, in the session's transaction: refused at REPEATABLE READ.
    let refused = shredder
        .query_one(
            "SELECT periods FROM login_etl_shred_audited('2026-02-01T00:00:00Z', 'os', 'dba', 'r')",
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("READ COMMITTED"),
        "{refused:?}"
    );
    shredder.batch_execute("ROLLBACK").await.unwrap();
    // At READ COMMITTED it sees the key and destroys it.
    let periods: Vec<String> = shredder
        .query_one(
            "SELECT periods FROM login_etl_shred_audited('2026-02-01T00:00:00Z', 'os', 'dba', 'r')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(periods, ["2026-01"]);
    let seen = db
        .operator()
        .period_keys_of(&["2026-01".to_string()])
        .await
        .unwrap();
    assert!(seen[0].wrapped.is_none(), "{seen:?}");
}
