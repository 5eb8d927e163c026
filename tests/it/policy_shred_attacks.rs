//! The attack review of crypto-shredding and pseudonymised user ids (helper-31), kept as
//! regressions: each test states the rule it holds. The key `user_id` pseudonyms are made under
//! is never retired while rows hold them; a retention writer gets no right to shred; a run that
//! would keep shredded addresses revealable elsewhere is refused; the documented roles suffice; and
//! an erase finds a subject's login of a period that appeared just before it.

use std::process::Stdio;

use serde_json::json;

use crate::helpers::*;

const K1: &str = "k1:7171717171717171717171717171717171717171717171717171717171717171";
const K2: &str = "k2:7272727272727272727272727272727272727272727272727272727272727272";

fn with(queue: &TestQueue, db: &TestDb, ring: &str) -> std::process::Command {
    let mut cmd = binary(queue, db);
    cmd.env("LOGIN_ETL_MASK_KEY", ring);
    cmd
}

/// Rule: an erasure holds under `user_id = "pseudonym"` across key rotations. `user_id`
/// pseudonyms (`k1:<hmac>`) are one-way, so `rekey` cannot move them, and `erase` finds them only
/// under keys of the ring: after rotate → rekey, `retire-key k1` is refused while rows hold them,
/// and `erase` under the ring that still has k1 takes alice's row.
#[tokio::test(flavor = "multi_thread")]
async fn the_key_user_id_pseudonyms_are_under_is_not_retired_while_rows_hold_them() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let policy = temp_policy(
        "version = 1\n[user_id]\nstore = \"pseudonym\"\n[ip]\nstore = \"aes-siv\"\nscope = \"month\"\n\
         [device_id]\nstore = \"drop\"\n[device_type]\nstore = \"keep\"\n[locale]\nstore = \"keep\"\n\
         [app_version]\nstore = \"keep\"\n[create_date]\nstore = \"keep\"\n[sent_at]\nstore = \"keep\"\n",
    );
    queue
        .send(&[
            eventbridge_login("alice", "203.0.113.9", "dev-a", "2026-01-10T08:30:00Z"),
            eventbridge_login("bob", "198.51.100.4", "dev-b", "2026-01-11T08:30:00Z"),
        ])
        .await;
    run_ok(with(&queue, &db, K1).args(["run", "--drain", "--policy", &policy]));
    let ring = format!("{K2},{K1}");
    run_ok(with(&queue, &db, &ring).args(["rekey", "--to", "k2", "--reason", "rotation"]));
    let retire = run_binary(with(&queue, &db, &ring).args(["retire-key", "--id", "k1"]));
    assert!(!retire.status.success(), "{}", all_output(&retire));
    assert!(
        all_output(&retire).contains("user_id pseudonyms of 2 rows"),
        "{}",
        all_output(&retire)
    );
    let erase = run_ok(with(&queue, &db, &ring).args([
        "erase",
        "--user-id",
        "alice",
        "--reason",
        "dsar-1",
    ]));
    assert!(
        all_output(&erase).contains("erased 1 rows"),
        "{}",
        all_output(&erase)
    );
    let left: i64 = db.scalar("SELECT count(*) FROM user_logins").await;
    assert_eq!(left, 1, "bob's row alone");
}

/// Rule (docs/least-privilege.sql): the writer never UPDATEs period keys nor sets a shred
/// horizon; only `shred` (an operator, audited, through the owner's function) destroys keys.
/// On an upgraded database, the writer of `run --retain-days` (DELETE on user_logins) gets no
/// more from migration 22 than any writer.
#[tokio::test(flavor = "multi_thread")]
async fn migration_22_gives_a_retention_writer_no_right_to_shred() {
    let db = TestDb::new().await;
    db.operator().migrate().await.unwrap();
    let file = include_str!("../../docs/least-privilege.sql");
    let (role, _url) =
        crate::audit_roles::role_from(&db, file, "login_etl_writer", "rv_writer").await;
    let client = db.client().await;
    // `run --retain-days`, as docs/least-privilege.sql says to grant it.
    (client.batch_execute(&format!(
        "GRANT DELETE, SELECT (create_date) ON user_logins TO {role}"
    )))
    .await
    .unwrap();
    // The upgrade with the roles in place: migration 22 as it runs on such a database.
    (client.batch_execute(include_str!("../../migrations/0022_period_keys.sql")))
        .await
        .unwrap();
    let can = |sql: String| {
        let client = &client;
        async move { client.query_one(&sql, &[]).await.unwrap().get::<_, bool>(0) }
    };
    let update = can(format!(
        "SELECT has_column_privilege('{role}', 'period_keys', 'wrapped', 'UPDATE')"
    ))
    .await;
    let horizon = can(format!(
        "SELECT has_table_privilege('{role}', 'shred_horizons', 'INSERT')"
    ))
    .await;
    crate::audit_roles::drop_role(&db, &role).await;
    assert!(
        !update && !horizon,
        "the writer may UPDATE period_keys.wrapped: {update}, INSERT into shred_horizons: {horizon}"
    );
}

/// Rule: a shredded period's aes-siv values can never be revealed afterwards. Quarantine bodies
/// and `extra_fields` are masked by the run's `--mask-strategy`: under aes-siv an address kept
/// there would open with the ring after its month's key is shredded, so `run` refuses the pair
/// before it reads anything.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_would_keep_sealed_addresses_revealable_elsewhere_is_refused() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let monthly = example_policy("monthly-links.toml");
    let body = json!({"version": "0", "id": "ev-x", "detail-type": "UserLogin",
        "source": "app.auth", "time": "2026-01-10T08:30:00Z", "detail": {"user_id": "x",
        "device_type": "ios", "ip": "203.0.113.77", "device_id": "dev-x", "locale": "NZ",
        "app_version": "2.3.0", "client_ip": "203.0.113.77"}})
    .to_string();
    queue.send(&[body]).await;
    let out = run_binary(
        binary(&queue, &db)
            .env("LOGIN_ETL_MASK_STRATEGY", "aes-siv")
            .args([
                "run",
                "--drain",
                "--keep-extra-fields",
                "--policy",
                &monthly,
            ]),
    );
    assert!(!out.status.success());
    assert!(
        all_output(&out).contains("--mask-strategy aes-siv"),
        "{}",
        all_output(&out)
    );
    assert!(
        !all_output(&out).contains("203.0.113.77"),
        "{}",
        all_output(&out)
    );
    let untouched: bool = db.scalar("SELECT to_regclass('user_logins') IS NULL").await;
    assert!(untouched, "refused before it touched the database");
}

/// The documented roles suffice: the writer of docs/least-privilege.sql runs a policy that seals
/// by month and pseudonymises user_id; the operator shreds, re-wraps and erases; the revealer
/// reveals. And neither writer nor operator destroys a key or sets a horizon but through `shred`.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_roles_run_seal_shred_rekey_erase_and_reveal() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    db.operator().migrate().await.unwrap();
    let policy = temp_policy(
        &std::fs::read_to_string(example_policy("monthly-links.toml"))
            .unwrap()
            .replacen("store = \"keep\"", "store = \"pseudonym\"", 1),
    );
    queue
        .send(&[
            eventbridge_login("alice", "203.0.113.9", "dev-a", "2026-01-10T08:30:00Z"),
            eventbridge_login("alice", "203.0.113.10", "dev-a", "2026-02-10T08:30:00Z"),
        ])
        .await;
    let (writer, writer_url) = least_privilege_role(&db, "rv_w").await;
    let with_url = |url: &str, ring: &str| {
        let mut cmd = binary_for(&queue, url);
        cmd.env("LOGIN_ETL_MASK_KEY", ring);
        cmd
    };
    let out = run_binary(with_url(&writer_url, K1).args(["run", "--drain", "--policy", &policy]));
    let (operator, op_url) = crate::audit_roles::role_from(
        &db,
        include_str!("../../docs/least-privilege-operator.sql"),
        "login_etl_operator",
        "rv_op",
    )
    .await;
    let (revealer, rv_url) = crate::audit_roles::role_from(
        &db,
        include_str!("../../docs/least-privilege-reveal.sql"),
        "login_etl_revealer",
        "rv_rv",
    )
    .await;
    let mut failures = Vec::new();
    if !out.status.success() {
        failures.push(format!("run: {}", all_output(&out)));
    }
    let ring = format!("{K2},{K1}");
    let steps: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "shred",
            K1.to_string(),
            vec!["shred", "--before", "2026-02", "--reason", "r", "--yes"],
        ),
        (
            "rekey",
            ring.clone(),
            vec!["rekey", "--to", "k2", "--reason", "rotation"],
        ),
        (
            "reveal",
            ring.clone(),
            vec!["reveal", "--user-id", "alice", "--reason", "t"],
        ),
        (
            "erase",
            ring.clone(),
            vec!["erase", "--user-id", "alice", "--reason", "dsar"],
        ),
    ];
    for (what, ring, args) in steps {
        let url = if what == "reveal" { &rv_url } else { &op_url };
        let out = run_binary(with_url(url, &ring).args(&args).stdin(Stdio::null()));
        if !out.status.success() {
            failures.push(format!("{what}: {}", all_output(&out)));
        }
    }
    let left: i64 = db.scalar("SELECT count(*) FROM user_logins").await;
    let not_rewrapped: i64 = db
        .scalar("SELECT count(*) FROM period_keys WHERE wrapped IS NOT NULL AND wrapped_by <> 'k2'")
        .await;
    let rewrap_audited: i64 = db
        .scalar("SELECT count(*) FROM privacy_operations WHERE detail ? 'period_keys_rewrapped'")
        .await;
    if (not_rewrapped, rewrap_audited) != (0, 1) {
        failures.push(format!(
            "rekey left {not_rewrapped} live keys under k1, {rewrap_audited} re-wrap audit rows"
        ));
    }
    for role in [&writer, &operator] {
        for sql in [
            "UPDATE period_keys SET wrapped = NULL, wrapped_by = NULL".to_string(),
            "INSERT INTO shred_horizons (before) VALUES (now())".to_string(),
        ] {
            let as_role = format!("SET ROLE {role}; {sql}; RESET ROLE");
            let client = db.client().await;
            let refused = client.batch_execute(&as_role).await.is_err();
            failures.extend((!refused).then(|| format!("{role} could run {sql}")));
        }
    }
    for role in [writer, operator, revealer] {
        crate::audit_roles::drop_role(&db, &role).await;
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(left, 0);
}

/// Rule: after `erase`, none of the subject's rows is left. Under a scoped `user_id` pseudonym
/// (here by day) the pseudonyms depend on the periods the table holds: they are computed inside
/// the erase's transaction, after its lock, so a login of the subject in a period that had no row
/// yet, committed just before, is found too (the review's order: it was computed before the lock).
#[tokio::test(flavor = "multi_thread")]
async fn a_login_in_a_new_period_committed_just_before_an_erase_is_erased() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let policy = temp_policy(
        &std::fs::read_to_string(example_policy("monthly-links.toml"))
            .unwrap()
            .replacen(
                "store = \"keep\"",
                "store = \"pseudonym\"\nscope = \"day\"",
                1,
            )
            .replace("scope = \"month\"", "scope = \"day\""),
    );
    queue
        .send(&[eventbridge_login(
            "alice",
            "203.0.113.9",
            "dev-a",
            "2026-01-10T08:30:00Z",
        )])
        .await;
    run_drain(&queue, &db, &["--policy", &policy]);
    // The erase is prepared (the command has read the recorded policies); meanwhile a consumer
    // commits her first login of the next day.
    let keys = login_etl::mask::KeyRing::parse(TEST_KEY_HEX).unwrap();
    queue
        .send(&[eventbridge_login(
            "alice",
            "203.0.113.9",
            "dev-a",
            "2026-01-11T00:00:01Z",
        )])
        .await;
    run_drain(&queue, &db, &["--policy", &policy]);
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) FROM user_logins").await,
        2
    );

    let mut operator = db.operator();
    let fingerprints = login_etl::mask::user_fingerprints(&keys, "alice");
    let forms = login_etl::mask::user_id_forms(&keys, "alice");
    let records = login_etl::mask::ErasureFingerprints::new(&keys).of("alice");
    let generations = login_etl::mask::Generations::new(&keys).unwrap();
    let pseudonyms = |periods: &[String]| {
        login_etl::policy::user_id_pseudonyms(&keys, "alice", periods).unwrap()
    };
    let subject = login_etl::sink::EraseSubject {
        id: "alice",
        pseudonyms: &pseudonyms,
        given_policy: None,
        fingerprints: &fingerprints,
        forms: &forms,
        records: &records,
        generations: &|mask| generations.of(mask),
    };
    let who = login_etl::sink::Accountable {
        os_user: "review".into(),
        actor: "review".into(),
        reason: "dsar".into(),
    };
    let erased = operator.erase_user(&subject, &who, false).await.unwrap();
    assert_eq!(erased.rows, 2);
    let left: i64 = db.scalar("SELECT count(*) FROM user_logins").await;
    assert_eq!(left, 0, "her login of 2026-01-11 is erased too");
}
