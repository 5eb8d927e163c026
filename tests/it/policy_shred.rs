//! Crypto-shredding and pseudonymised user ids under `run --policy`, against real PostgreSQL:
//! `examples/policies/monthly-links.toml` seals each month's addresses under a random key of that
//! month, `reveal` opens them, `shred` destroys the keys (asked first, audited) after which
//! nothing reveals them while rows and one-way columns stay, and a late login of a shredded
//! period is stored without the value; `minimal.toml`'s `user_id` pseudonym is still found,
//! revealed and erased by the subject's id, and the erasure holds against a late login.

use std::process::Stdio;

use serde_json::json;

use crate::helpers::*;

async fn ip_of(db: &TestDb, user: &str) -> (Option<String>, Option<String>, Option<String>) {
    let row = (db.client().await)
        .query_one(
            "SELECT masked_ip, masked_device_id, period FROM user_logins WHERE user_id = $1",
            &[&user],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test(flavor = "multi_thread")]
async fn shred_makes_a_months_sealed_addresses_unrecoverable_and_keeps_the_rows() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let monthly = example_policy("monthly-links.toml");
    queue
        .send(&[
            eventbridge_login("a", "203.0.113.9", "dev-1", "2026-01-10T08:30:00Z"),
            eventbridge_login("b", "203.0.113.9", "dev-1", "2026-01-20T09:45:00Z"),
            eventbridge_login("c", "203.0.113.9", "dev-1", "2026-02-03T23:59:59Z"),
        ])
        .await;
    run_drain(&queue, &db, &["--policy", &monthly]);
    let (a, b, c) = (
        ip_of(&db, "a").await,
        ip_of(&db, "b").await,
        ip_of(&db, "c").await,
    );
    let jan = a.0.clone().unwrap();
    let feb = c.0.clone().unwrap();
    assert!(jan.starts_with("@2026-01:"), "{jan}");
    assert!(feb.starts_with("@2026-02:"), "{feb}");
    assert_eq!(a.0, b.0, "one address inside January links");
    assert_eq!(a.1, b.1, "and so does one device");
    assert_ne!(a.1, c.1, "not across months");
    let client = db.client().await;
    let live: i64 = (client.query_one(
        "SELECT count(*) FROM period_keys WHERE wrapped IS NOT NULL",
        &[],
    ))
    .await
    .unwrap()
    .get(0);
    assert_eq!(
        live, 2,
        "a key per month, made by the first consumer that needed it"
    );

    let reveal = |args: &[&str]| {
        run_binary(
            binary(&queue, &db)
                .args(["reveal", "--reason", "ticket-1"])
                .args(args),
        )
    };
    let out = reveal(&["--masked-ip", &jan]);
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("203.0.113.9"),
        "{}",
        all_output(&out)
    );

    // Not confirmed without a terminal, and a dry run changes nothing.
    let shred = |extra: &[&str]| {
        run_binary(
            binary(&queue, &db)
                .args(["shred", "--before", "2026-02", "--reason", "retention 12m"])
                .args(extra)
                .stdin(Stdio::null()),
        )
    };
    let out = shred(&[]);
    assert!(!out.status.success());
    assert!(all_output(&out).contains("--yes"), "{}", all_output(&out));
    let out = shred(&["--dry-run"]);
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("2026-01") && all_output(&out).contains("2 rows"),
        "{}",
        all_output(&out)
    );
    assert!(
        !all_output(&out).contains("2026-02 "),
        "{}",
        all_output(&out)
    );
    let wrapped: Vec<u8> = (client.query_one(
        "SELECT wrapped FROM period_keys WHERE period = '2026-01'",
        &[],
    ))
    .await
    .unwrap()
    .get(0);

    let out = shred(&["--yes"]);
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("shredded the keys of 1 period (2 rows"),
        "{}",
        all_output(&out)
    );
    let audit = (client.query_one(
        "SELECT rows, detail->'periods' FROM privacy_operations WHERE operation = 'shred'",
        &[],
    ))
    .await
    .unwrap();
    assert_eq!(audit.get::<_, i64>(0), 2);
    assert_eq!(audit.get::<_, serde_json::Value>(1), json!(["2026-01"]));

    let out = run_ok(binary(&queue, &db).args([
        "report", "privacy", "--policy", &monthly, "--format", "json",
    ]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["shredded_periods"][0]["period"], "2026-01",
        "{report}"
    );
    assert_eq!(report["period_keys"][0]["period"], "2026-02", "{report}");
    assert!(report["shred_horizon"].is_string(), "{report}");
    let out = run_ok(binary(&queue, &db).args(["report", "privacy", "--policy", &monthly]));
    assert!(
        all_output(&out).contains("Shredded periods (their"),
        "{}",
        all_output(&out)
    );

    // Nothing reveals January any more; February still opens; the rows and links stay.
    let out = reveal(&["--value", &jan, "--field", "ip"]);
    assert!(!out.status.success());
    assert!(
        all_output(&out).contains("shredded"),
        "{}",
        all_output(&out)
    );
    assert!(
        !all_output(&out).contains("203.0.113.9"),
        "{}",
        all_output(&out)
    );
    let out = reveal(&["--masked-ip", &jan]);
    assert!(
        all_output(&out).contains("<shredded"),
        "{}",
        all_output(&out)
    );
    assert!(
        !all_output(&out).contains("203.0.113.9"),
        "{}",
        all_output(&out)
    );
    let out = reveal(&["--value", &feb, "--field", "ip"]);
    assert!(
        all_output(&out).contains("203.0.113.9"),
        "{}",
        all_output(&out)
    );
    assert_eq!(ip_of(&db, "a").await, a, "the row keeps its values");
    let dump = db.dump_all_tables().await;
    assert!(
        !dump.contains("203.0.113.9") && !dump.contains("dev-1"),
        "{dump}"
    );
    assert!(
        !dump.contains(&hex::encode(&wrapped)),
        "the wrapped key is gone: {dump}"
    );

    // A late January login, and one of a month that never had a key, store no address.
    queue
        .send(&[
            eventbridge_login("d", "203.0.113.9", "dev-1", "2026-01-25T10:00:00Z"),
            eventbridge_login("e", "203.0.113.9", "dev-1", "2025-06-01T10:00:00Z"),
        ])
        .await;
    run_drain(&queue, &db, &["--policy", &monthly]);
    let d = ip_of(&db, "d").await;
    assert_eq!(d.0, None, "shredded on arrival");
    assert_eq!(d.1, a.1, "the one-way device link stays");
    assert_eq!(ip_of(&db, "e").await.0, None);
    let keys: Vec<String> = (client.query("SELECT period FROM period_keys ORDER BY 1", &[]))
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        keys,
        ["2026-01", "2026-02"],
        "no key made before the horizon"
    );
    let out = reveal(&["--user-id", "d"]);
    assert!(
        all_output(&out).contains("<shredded>"),
        "{}",
        all_output(&out)
    );

    // A shred is for good; and a period still running is not shredded.
    for sql in [
        "UPDATE period_keys SET wrapped = '\\x00', wrapped_by = 'k' WHERE period = '2026-01'",
        "DELETE FROM period_keys WHERE period = '2026-01'",
    ] {
        let err = client.batch_execute(sql).await.unwrap_err();
        assert!(format!("{err:?}").contains("42501"), "{sql}: {err:?}");
    }
    let out = run_binary(
        binary(&queue, &db).args(["shred", "--before", "2999-01", "--reason", "r", "--yes"]),
    );
    assert!(!out.status.success());
    assert!(
        all_output(&out).contains("in the future"),
        "{}",
        all_output(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_id_pseudonym_is_revealed_and_erased_by_the_id_and_the_erasure_holds() {
    for (name, scoped) in [("all-time", false), ("monthly", true)] {
        let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
        let text_policy = std::fs::read_to_string(example_policy("minimal.toml")).unwrap();
        let text_policy = match scoped {
            true => text_policy.replace(
                "store = \"pseudonym\"",
                "store = \"pseudonym\"\nscope = \"month\"",
            ),
            false => text_policy,
        };
        let policy = temp_policy(&text_policy);
        queue
            .send(&[
                eventbridge_login("alice", "203.0.113.9", "dev-a", "2026-01-10T08:30:00Z"),
                eventbridge_login("alice", "203.0.113.10", "dev-a", "2026-02-10T08:30:00Z"),
                eventbridge_login("bob", "198.51.100.4", "dev-b", "2026-01-11T08:30:00Z"),
            ])
            .await;
        run_drain(&queue, &db, &["--policy", &policy]);
        let client = db.client().await;
        let ids: Vec<String> = (client.query("SELECT user_id FROM user_logins", &[]))
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(ids.len(), 3, "{name}");
        assert!(
            !ids.iter()
                .any(|id| id.contains("alice") || id.contains("bob")),
            "{ids:?}"
        );

        let out = run_binary(binary(&queue, &db).args([
            "reveal",
            "--user-id",
            "alice",
            "--reason",
            "dsar-7",
        ]));
        assert!(
            all_output(&out).contains("revealed 2 rows"),
            "{name}: {}",
            all_output(&out)
        );
        let out =
            run_ok(binary(&queue, &db).args(["erase", "--user-id", "alice", "--reason", "dsar-7"]));
        assert!(
            all_output(&out).contains("erased 2 rows"),
            "{name}: {}",
            all_output(&out)
        );
        // A login of hers sent before the erasure and delivered after it is never written.
        queue
            .send(&[eventbridge_login(
                "alice",
                "203.0.113.9",
                "dev-a",
                "2026-01-12T08:30:00Z",
            )])
            .await;
        run_drain(&queue, &db, &["--policy", &policy]);
        let left: i64 = (client.query_one("SELECT count(*) FROM user_logins", &[]))
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 1, "{name}: only bob's row");
        let dump = db.dump_all_tables().await;
        assert!(!dump.contains("alice"), "{name}: {dump}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_consumer_stops_sealing_under_a_key_shredded_while_it_runs() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let monthly = example_policy("monthly-links.toml");
    let _consumer = Spawned::new(binary(&queue, &db).args(["run", "--policy", &monthly]));
    let client = db.client().await;
    let rows = |n: i64| {
        let client = &client;
        async move {
            // The consumer makes the schema first.
            let count = client
                .query_one("SELECT count(*) FROM user_logins", &[])
                .await;
            count.is_ok_and(|row| row.get::<_, i64>(0) >= n)
        }
    };
    queue
        .send(&[eventbridge_login(
            "a",
            "203.0.113.9",
            "dev-1",
            "2026-01-10T08:30:00Z",
        )])
        .await;
    wait_until("the first row", std::time::Duration::from_secs(60), || {
        rows(1)
    })
    .await;
    assert!(ip_of(&db, "a").await.0.unwrap().starts_with("@2026-01:"));
    // The consumer holds January's key in memory; the shred destroys the stored one.
    run_ok(binary(&queue, &db).args([
        "shred",
        "--before",
        "2026-02",
        "--reason",
        "retention",
        "--yes",
    ]));
    queue
        .send(&[eventbridge_login(
            "b",
            "203.0.113.9",
            "dev-1",
            "2026-01-11T08:30:00Z",
        )])
        .await;
    wait_until("the second row", std::time::Duration::from_secs(60), || {
        rows(2)
    })
    .await;
    assert_eq!(
        ip_of(&db, "b").await.0,
        None,
        "sealed under the shredded key, the row was made again without it"
    );
}

/// `shred` decides in SQL (`login_etl_period_end`) which periods end by `--before`, and its plan,
/// `reveal` and the writers decide in Rust (`mask::period_end`): the same rule, checked on every
/// day, ISO week and month of 2025–2028 and on labels that name no period.
#[tokio::test(flavor = "multi_thread")]
async fn the_server_and_the_library_end_a_period_at_the_same_time() {
    use chrono::{Duration, TimeZone, Utc};
    use login_etl::policy::{period, Scope};
    let db = TestDb::new().await;
    db.operator().migrate().await.unwrap();
    let mut labels: Vec<String> = [
        "2026-13",
        "2026-W54",
        "2026-W00",
        "2026-02-30",
        "2026",
        "x",
        "",
    ]
    .map(String::from)
    .to_vec();
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap();
    for day in 0..(4 * 366) {
        for scope in [Scope::Day, Scope::Week, Scope::Month] {
            labels.extend(period::label(scope, start + Duration::days(day)));
        }
    }
    labels.sort();
    labels.dedup();
    let rows = (db.client().await)
        .query(
            "SELECT p, login_etl_period_end(p) FROM unnest($1::text[]) AS p ORDER BY p",
            &[&labels],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), labels.len());
    for row in rows {
        let (label, server): (String, Option<chrono::DateTime<Utc>>) = (row.get(0), row.get(1));
        assert_eq!(server, login_etl::mask::period_end(&label), "{label}");
    }
}
