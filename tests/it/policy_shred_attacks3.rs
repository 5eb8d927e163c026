//! The third review of crypto-shredding (helper-33, of migration 22's SQL), kept as a regression:
//! default privileges, TRUNCATE, an infinite horizon and a writer's default isolation never get
//! round the guards.

use crate::helpers::*;

/// Promise: only the owner's audited functions change keys,
/// whatever default privileges the database gives. Default privileges that grant everything on
/// new tables and functions to a role are taken back by migration 22 (as migration 20 did for
/// older tables) but for what its grants on user_logins make it, TRUNCATE is refused even to the
/// owner, a horizon at `-infinity` is refused,
/// and a writer whose default isolation is REPEATABLE READ still adds keys that see the horizon.
#[tokio::test(flavor = "multi_thread")]
async fn default_privileges_truncate_infinity_and_isolation_do_not_bypass_the_guards() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let grabby = format!("grabby_{}", &db.name[db.name.len() - 8..]);
    let owner = db.client().await;
    owner
        .batch_execute(&format!(
            "CREATE ROLE {grabby} NOLOGIN; \
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {grabby}; \
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO {grabby}"
        ))
        .await
        .unwrap();
    db.operator().migrate().await.unwrap();
    let may = |sql: String| {
        let owner = &owner;
        async move { owner.query_one(&sql, &[]).await.unwrap().get::<_, bool>(0) }
    };
    let rights = [
        may(format!(
            "SELECT has_table_privilege('{grabby}', 'period_keys', 'UPDATE')"
        ))
        .await,
        may(format!(
            "SELECT has_table_privilege('{grabby}', 'period_keys', 'TRUNCATE')"
        ))
        .await,
        may(format!(
            "SELECT has_table_privilege('{grabby}', 'period_keys', 'TRIGGER')"
        ))
        .await,
        may(format!(
            "SELECT has_table_privilege('{grabby}', 'shred_horizons', 'INSERT')"
        ))
        .await,
        may(format!(
            "SELECT has_function_privilege('{grabby}', \
             'login_etl_shred_audited(timestamptz, text, text, text)', 'EXECUTE')"
        ))
        .await,
    ];
    owner
        .batch_execute(&format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {grabby}; \
             ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE EXECUTE ON FUNCTIONS FROM {grabby}; \
             DROP OWNED BY {grabby}; DROP ROLE {grabby}"
        ))
        .await
        .unwrap();
    // The default privileges also gave it UPDATE on user_logins' masks (every table of a fresh
    // database): that is an operator's grant, so it may shred, through the function only.
    assert_eq!(
        rights,
        [false, false, false, false, true],
        "update, truncate, trigger, horizon, shred"
    );
    for sql in ["TRUNCATE period_keys", "TRUNCATE shred_horizons"] {
        let err = owner.batch_execute(sql).await.unwrap_err();
        assert!(
            format!("{err:?}").contains("never truncated"),
            "{sql}: {err:?}"
        );
    }
    let err = owner
        .query_one(
            "SELECT * FROM login_etl_shred_audited('-infinity', 'os', 'dba', 'r')",
            &[],
        )
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("has passed"), "{err:?}");

    // A writer whose sessions default to REPEATABLE READ still seals and lands its login.
    let (writer, writer_url) = least_privilege_role(&db, "r3_w").await;
    owner
        .batch_execute(&format!(
            "ALTER ROLE {writer} SET default_transaction_isolation = 'repeatable read'"
        ))
        .await
        .unwrap();
    queue
        .send(&[
            serde_json::json!({"version": "0", "id": "ev-1", "detail-type": "UserLogin",
            "source": "app.auth", "time": "2026-01-10T08:30:00Z", "detail": {"user_id": "a",
            "device_type": "ios", "ip": "203.0.113.9", "device_id": "dev-a"}})
            .to_string(),
        ])
        .await;
    let policy = format!(
        "{}/examples/policies/monthly-links.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let out =
        run_binary(binary_for(&queue, &writer_url).args(["run", "--drain", "--policy", &policy]));
    let rows: i64 = db
        .scalar("SELECT count(*) FROM user_logins WHERE masked_ip LIKE '@2026-01:%'")
        .await;
    crate::audit_roles::drop_role(&db, &writer).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rows, 1);
}
