//! An audit nobody can forge (issue 32, item 3): the server stamps who (`db_user`) and when in
//! `mask_reveals` and `privacy_operations`, whatever a client sends; no role but the owner can
//! change or delete audit rows; the operator commands run under the role of
//! docs/least-privilege-operator.sql; and they never migrate: on an older schema they say to.

use serde_json::json;
use tokio_postgres::error::SqlState;

use crate::helpers::*;

const K1: &str = "k1:6161616161616161616161616161616161616161616161616161616161616161";
const K2: &str = "k2:6262626262626262626262626262626262626262626262626262626262626262";

/// A login role made from one of the documented role files (`role` is its role name there).
pub(crate) async fn role_from(
    db: &TestDb,
    file: &str,
    role: &str,
    prefix: &str,
) -> (String, String) {
    let name = format!("{prefix}_{}", &db.name[db.name.len() - 8..]);
    let grants = file.replace(role, &name).replace("analytics", &db.name);
    let client = db.client().await;
    client.batch_execute(&grants).await.unwrap();
    (client.batch_execute(&format!("ALTER ROLE {name} LOGIN")))
        .await
        .unwrap();
    let url = db.url.replacen("postgres@", &format!("{name}@"), 1);
    (name, url)
}

pub(crate) async fn drop_role(db: &TestDb, role: &str) {
    (db.client().await)
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
}

fn refused(result: Result<u64, tokio_postgres::Error>, what: &str) {
    let e = result.expect_err(what);
    assert_eq!(
        e.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{what}: {e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_revealer_cannot_forge_or_change_the_reveal_audit() {
    let db = TestDb::new().await;
    db.operator().migrate().await.unwrap();
    let file = include_str!("../../docs/least-privilege-reveal.sql");
    let (role, url) = role_from(&db, file, "login_etl_revealer", "audit_rev").await;
    let revealer = pg_client(&url).await;

    // A forged database user or time is refused: the role may not set those columns.
    refused(
        revealer
            .execute(
                "INSERT INTO mask_reveals (os_user, actor, reason, selector, masks, row_count, db_user) \
                 VALUES ('x', 'x', 'forged', 's', '{}', 0, 'someone_else')",
                &[],
            )
            .await,
        "a forged db_user",
    );
    refused(
        revealer
            .execute(
                "INSERT INTO mask_reveals (os_user, actor, reason, selector, masks, row_count, revealed_at) \
                 VALUES ('x', 'x', 'forged', 's', '{}', 0, '2001-01-01')",
                &[],
            )
            .await,
        "a forged revealed_at",
    );
    // What it may send is stored, stamped by the server.
    revealer
        .execute(
            "INSERT INTO mask_reveals (os_user, actor, reason, selector, masks, row_count) \
             VALUES ('x', 'x', 'honest', 's', '{}', 0)",
            &[],
        )
        .await
        .unwrap();
    let stamped = (db.client().await)
        .query_one(
            "SELECT db_user, now() - revealed_at < interval '1 minute' FROM mask_reveals \
             WHERE reason = 'honest'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(stamped.get::<_, String>(0), role);
    assert!(stamped.get::<_, bool>(1));
    // Nor change or delete a row afterwards.
    for sql in [
        "UPDATE mask_reveals SET reason = 'rewritten'",
        "UPDATE mask_reveals SET masks = '{}'",
        "DELETE FROM mask_reveals",
        "TRUNCATE mask_reveals",
    ] {
        refused(revealer.execute(sql, &[]).await, sql);
    }
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM mask_reveals WHERE reason = 'honest'")
            .await,
        1
    );
    drop(revealer);
    drop_role(&db, &role).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_stamps_who_and_when_whatever_a_client_sends() {
    let db = TestDb::new().await;
    db.operator().migrate().await.unwrap();
    // Even a client allowed every column (here the owner) cannot choose them.
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO mask_reveals (os_user, actor, reason, selector, masks, row_count, db_user, revealed_at) \
             VALUES ('x', 'x', 'forged', 's', '{}', 0, 'someone_else', '2001-01-01');
             INSERT INTO privacy_operations (operation, os_user, actor, reason, db_user, at) \
             VALUES ('erase', 'x', 'x', 'forged', 'someone_else', '2001-01-01');
             UPDATE mask_reveals SET db_user = 'later', revealed_at = '2002-02-02';
             UPDATE privacy_operations SET db_user = 'later', at = '2002-02-02', operation = 'rekey';",
        )
        .await
        .unwrap();
    for (table, time) in [
        ("mask_reveals", "revealed_at"),
        ("privacy_operations", "at"),
    ] {
        let row = client
            .query_one(
                &format!(
                    "SELECT db_user, {time} > now() - interval '1 minute' FROM {table} \
                     WHERE reason = 'forged'"
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "postgres", "{table}");
        assert!(row.get::<_, bool>(1), "{table}: the client's time was kept");
    }
    assert_eq!(
        db.scalar::<String>("SELECT operation FROM privacy_operations")
            .await,
        "erase"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn erase_rekey_and_retire_key_work_under_the_operator_role() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let (subject, other) = (unique("op-erased"), unique("op-kept"));
    let login = |user: &str, ip: &str| {
        json!({"user_id": user, "ip": ip, "device_id": format!("dev-{ip}"), "device_type": "ios"})
            .to_string()
    };
    queue
        .send(&[
            login(&subject, "198.51.100.61"),
            login(&other, "198.51.100.62"),
        ])
        .await;
    let with = |url: &str, ring: &str| {
        let mut cmd = binary_for(&queue, url);
        cmd.env("LOGIN_ETL_MASK_KEY", ring)
            .env("LOGIN_ETL_MASK_STRATEGY", "aes-siv");
        cmd
    };
    run_ok(with(&db.url, K1).args(["run", "--drain"])); // the owner migrates and writes
    let (revealer, reveal_url) = role_from(
        &db,
        include_str!("../../docs/least-privilege-reveal.sql"),
        "login_etl_revealer",
        "audit_rv",
    )
    .await;
    run_ok(with(&reveal_url, K1).args(["reveal", "--user-id", &subject, "--reason", "t-1"]));
    let (operator, url) = role_from(
        &db,
        include_str!("../../docs/least-privilege-operator.sql"),
        "login_etl_operator",
        "audit_op",
    )
    .await;
    let ring = format!("{K2},{K1}");
    run_ok(with(&url, &ring).args(["rekey", "--to", "k2", "--reason", "rotation"]));
    run_ok(with(&url, &ring).args(["retire-key", "--id", "k1"]));
    run_ok(with(&url, &ring).args(["erase", "--user-id", &subject, "--reason", "dsr-op"]));

    let client = db.client().await;
    let rows: Vec<(String, i64)> = (client
        .query("SELECT user_id, count(*) FROM user_logins GROUP BY 1", &[]))
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert_eq!(rows, vec![(other.clone(), 1)]);
    let k2_rows: i64 = db
        .scalar("SELECT count(*) FROM user_logins WHERE masked_ip LIKE 'k2:%'")
        .await;
    assert_eq!(k2_rows, 1, "re-keyed under the operator role");
    // The audit rows name the operator's database role, stamped by the server.
    let audit: Vec<(String, String, i64)> = (client.query(
        "SELECT operation, db_user, rows FROM privacy_operations ORDER BY id",
        &[],
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    assert_eq!(
        audit,
        vec![
            ("rekey".into(), operator.clone(), 2),
            ("erase".into(), operator.clone(), 1)
        ]
    );
    // The reveal audit row of the subject was neutralised through the owner's function.
    let selector: String = db.scalar("SELECT selector FROM mask_reveals").await;
    assert_eq!(selector, "erased subject");
    // The operator can add to the audit, not change or delete it.
    let as_operator = pg_client(&url).await;
    for sql in [
        "UPDATE privacy_operations SET reason = 'rewritten'",
        "DELETE FROM privacy_operations",
        "DELETE FROM mask_reveals",
        "TRUNCATE privacy_operations",
        "CREATE TABLE public.planted (x int)",
    ] {
        refused(as_operator.execute(sql, &[]).await, sql);
    }
    // Nor write or move an erasure record: moving one back lets the subject's old logins land
    // again, forward drops new ones, and neither would leave an audit row.
    for sql in [
        "UPDATE erased_subjects SET erased_at = '2001-01-01'",
        "INSERT INTO erased_subjects (fingerprint) VALUES ('made-up')",
        "DELETE FROM erased_subjects",
    ] {
        refused(as_operator.execute(sql, &[]).await, sql);
    }
    // The owner's function is the only way, and whatever it is handed (a made-up subject and
    // another user's mask) its audit row names the operator's role, the reason given and every
    // reveal row it changed; the selectors it clears are derived, never given.
    client
        .batch_execute(
            "INSERT INTO mask_reveals (os_user, actor, reason, selector, masks, row_count) VALUES \
             ('x', 'x', 'someone', 'masked_ip = \"k2:not-held\"', '{k2:not-held}', 1), \
             ('x', 'x', 'untouched', 'report duplicates', '{k2:other}', 1)",
        )
        .await
        .unwrap();
    let targeted: i64 = db
        .scalar("SELECT id FROM mask_reveals WHERE reason = 'someone'")
        .await;
    as_operator
        .batch_execute(
            "SELECT * FROM login_etl_erase_audited('nobody', ARRAY['made-up'], ARRAY['made-up'], \
             ARRAY['k2:not-held'], 'u', 'u', 'forged', 0, 0)",
        )
        .await
        .unwrap();
    let forged = (client.query_one(
        "SELECT db_user, reason, detail->'reveal_ids' FROM privacy_operations \
         WHERE detail->'subjects' ? 'made-up'",
        &[],
    ))
    .await
    .unwrap();
    let forged: (String, String, serde_json::Value) = (forged.get(0), forged.get(1), forged.get(2));
    assert_eq!(
        forged,
        (operator.clone(), "forged".to_string(), json!([targeted]))
    );
    let untouched: (String, Vec<String>) = {
        let r = (client.query_one(
            "SELECT selector, masks FROM mask_reveals WHERE reason = 'untouched'",
            &[],
        ))
        .await
        .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        untouched,
        ("report duplicates".into(), vec!["k2:other".into()])
    );
    let recorded: chrono::DateTime<chrono::Utc> = db
        .scalar("SELECT erased_at FROM erased_subjects WHERE fingerprint = 'made-up'")
        .await;
    let audited: chrono::DateTime<chrono::Utc> = db
        .scalar("SELECT at FROM privacy_operations WHERE detail->'subjects' ? 'made-up'")
        .await;
    // Both are the clock's (migration 20): the record after the lock, the audit row after it.
    assert!(
        recorded <= audited,
        "the audit row is written after the record it lists"
    );
    drop(as_operator);
    drop_role(&db, &operator).await;
    drop_role(&db, &revealer).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_commands_on_an_older_schema_say_to_migrate_and_change_nothing() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let ring = format!("{K2},{K1}");
    let commands: [&[&str]; 4] = [
        &["erase", "--user-id", "u-1", "--reason", "dsr"],
        &["reveal", "--user-id", "u-1", "--reason", "t"],
        &["rekey", "--to", "k2"],
        &["retire-key", "--id", "k1"],
    ];
    let tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'";
    for args in commands {
        let out = run_binary(
            binary(&queue, &db)
                .env("LOGIN_ETL_MASK_KEY", &ring)
                .args(args),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr.contains("run `login-etl migrate` first"),
            "{args:?}: {stderr}"
        );
        assert_eq!(db.scalar::<i64>(tables).await, 0, "{args:?} created tables");
    }
    // One migration behind: still refused, nothing applied.
    run_ok(binary(&queue, &db).arg("migrate"));
    let client = db.client().await;
    client
        .batch_execute("DELETE FROM login_etl_schema_migrations WHERE version = 17")
        .await
        .unwrap();
    let out = run_binary(
        binary(&queue, &db)
            .env("LOGIN_ETL_MASK_KEY", &ring)
            .args(commands[0]),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 migration(s) behind"), "{stderr}");
    let applied: i64 = db
        .scalar("SELECT count(*) FROM login_etl_schema_migrations WHERE version = 17")
        .await;
    assert_eq!(applied, 0, "erase applied a migration");
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM erased_subjects")
            .await,
        0
    );
}
