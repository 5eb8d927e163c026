//! Every policy choice against real PostgreSQL, generated from one table: for each field and each
//! way a policy may store it, three logins (two sharing an address and a device) are run under a
//! policy that is the seed's but for that field, then checked for what lands in the column, what
//! `report duplicates` shows, what `reveal` gives back (the raw value only for a revealable
//! choice, never otherwise), that `erase` by the subject's id takes their row, and that no raw
//! address or device id is anywhere in the database.

use serde_json::Value;

use crate::helpers::*;

const IP_A: &str = "203.0.113.9";
const IP_B: &str = "198.51.100.4";
const DEVICE_A: &str = "593-47-5928";
const DEVICE_B: &str = "593-47-0001";

/// What a column holds under a choice.
#[derive(Clone, Copy, Debug)]
enum Holds {
    /// The value as it arrived.
    Raw,
    /// NULL.
    Nothing,
    /// A pseudonym: equal values equal, others not; `reveal` gives the value back or not.
    Pseudonym { revealable: bool },
    /// This exact text for the first login.
    Exactly(&'static str),
}

struct Case {
    field: &'static str,
    toml: &'static str,
    column: &'static str,
    holds: Holds,
}

const fn case(field: &'static str, toml: &'static str, column: &'static str, holds: Holds) -> Case {
    Case {
        field,
        toml,
        column,
        holds,
    }
}

const ONE_WAY: Holds = Holds::Pseudonym { revealable: false };
const REVEALABLE: Holds = Holds::Pseudonym { revealable: true };

const IP_CASES: &[Case] = &[
    case("ip", r#"store = "hmac""#, "masked_ip", ONE_WAY),
    case(
        "ip",
        "store = \"hmac\"\nscope = \"week\"",
        "masked_ip",
        ONE_WAY,
    ),
    case("ip", r#"store = "aes-siv""#, "masked_ip", REVEALABLE),
    case(
        "ip",
        "store = \"aes-siv\"\nscope = \"month\"",
        "masked_ip",
        REVEALABLE,
    ),
    case(
        "ip",
        r#"store = "ipcrypt-pfx""#,
        "masked_ip_network",
        REVEALABLE,
    ),
    case(
        "ip",
        "store = \"network\"\nprefix_v4 = 24\nprefix_v6 = 48",
        "masked_ip_network",
        ONE_WAY,
    ),
    case(
        "ip",
        "store = \"sha256\"\nunkeyed_ok = true",
        "masked_ip",
        ONE_WAY,
    ),
    case("ip", r#"store = "drop""#, "masked_ip", Holds::Nothing),
];

const DEVICE_CASES: &[Case] = &[
    case(
        "device_id",
        "store = \"hmac\"\nscope = \"day\"",
        "masked_device_id",
        ONE_WAY,
    ),
    case(
        "device_id",
        r#"store = "aes-siv""#,
        "masked_device_id",
        REVEALABLE,
    ),
    case(
        "device_id",
        "store = \"aes-siv\"\nscope = \"week\"",
        "masked_device_id",
        REVEALABLE,
    ),
    case(
        "device_id",
        "store = \"sha256\"\nunkeyed_ok = true",
        "masked_device_id",
        ONE_WAY,
    ),
    case(
        "device_id",
        r#"store = "drop""#,
        "masked_device_id",
        Holds::Nothing,
    ),
];

const OTHER_CASES: &[Case] = &[
    case("user_id", r#"store = "keep""#, "user_id", Holds::Raw),
    case("user_id", r#"store = "pseudonym""#, "user_id", ONE_WAY),
    case(
        "user_id",
        "store = \"pseudonym\"\nscope = \"month\"",
        "user_id",
        ONE_WAY,
    ),
    case(
        "device_type",
        r#"store = "drop""#,
        "device_type",
        Holds::Nothing,
    ),
    case("locale", r#"store = "drop""#, "locale", Holds::Nothing),
    case(
        "app_version",
        "store = \"generalise\"\nparts = 1",
        "app_version",
        Holds::Exactly("2"),
    ),
    case(
        "app_version",
        r#"store = "drop""#,
        "app_version",
        Holds::Nothing,
    ),
    case(
        "create_date",
        "store = \"truncate\"\nto = \"month\"",
        "create_date::text",
        Holds::Exactly("2026-01-01"),
    ),
    case(
        "sent_at",
        "store = \"truncate\"\nto = \"hour\"",
        "to_char(sent_at AT TIME ZONE 'UTC', 'HH24:MI:SS')",
        Holds::Exactly("08:00:00"),
    ),
];

/// The seed policy with `field` stored as `toml` says.
fn policy(field: &str, toml: &str) -> String {
    let seed = [
        ("user_id", "store = \"keep\""),
        ("ip", "store = \"hmac\""),
        ("device_id", "store = \"hmac\""),
        ("device_type", "store = \"keep\""),
        ("locale", "store = \"keep\""),
        ("app_version", "store = \"keep\""),
        ("create_date", "store = \"keep\""),
        ("sent_at", "store = \"keep\""),
    ];
    let mut text = String::from("version = 1\n");
    for (name, body) in seed {
        let body = if name == field { toml } else { body };
        text.push_str(&format!("[{name}]\n{body}\n"));
    }
    temp_policy(&text)
}

/// The raw value the first login sent for `field`.
fn raw(field: &str) -> &'static str {
    match field {
        "user_id" => "u1",
        "ip" => IP_A,
        "device_id" => DEVICE_A,
        "device_type" => "ios",
        "locale" => "NZ",
        _ => "2.3.0",
    }
}

async fn check(case: &Case) {
    let what = format!("[{}] {}", case.field, case.toml.replace('\n', "; "));
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let file = policy(case.field, case.toml);
    queue
        .send(&[
            eventbridge_login("u1", IP_A, DEVICE_A, "2026-01-07T08:30:15Z"),
            eventbridge_login("u2", IP_A, DEVICE_A, "2026-01-07T09:40:00Z"),
            eventbridge_login("u3", IP_B, DEVICE_B, "2026-01-07T10:00:00Z"),
        ])
        .await;
    run_drain(&queue, &db, &["--policy", &file]);
    let client = db.client().await;
    // Rows by their time: u1, u2, u3 (user_id may be a pseudonym).
    let values: Vec<Option<String>> = (client.query(
        &format!(
            "SELECT {}::text FROM user_logins ORDER BY sent_at, create_date",
            case.column
        ),
        &[],
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert_eq!(values.len(), 3, "{what}");
    match case.holds {
        Holds::Raw => assert_eq!(values[0].as_deref(), Some(raw(case.field)), "{what}"),
        Holds::Nothing => assert!(values.iter().all(Option::is_none), "{what}: {values:?}"),
        Holds::Exactly(text) => assert_eq!(values[0].as_deref(), Some(text), "{what}"),
        // Three users: three pseudonyms, none of them an id.
        Holds::Pseudonym { .. } if case.field == "user_id" => {
            assert!(
                values[0] != values[1] && values[1] != values[2],
                "{what}: {values:?}"
            );
            let ids = ["u1", "u2", "u3"].map(|u| Some(u.to_string()));
            assert!(
                values.iter().all(|v| v.is_some() && !ids.contains(v)),
                "{what}"
            );
        }
        Holds::Pseudonym { .. } => {
            assert!(values.iter().all(Option::is_some), "{what}: {values:?}");
            assert_eq!(values[0], values[1], "{what}: equal values link");
            assert_ne!(values[0], values[2], "{what}: others do not");
            assert_ne!(values[0].as_deref(), Some(raw(case.field)), "{what}");
        }
    }

    // What `report duplicates` shows: u1 and u2 share an address and a device unless dropped.
    let out = run_ok(binary(&queue, &db).args(["report", "duplicates", "--format", "json"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shared = |list: &str| report[list].as_array().map_or(0, Vec::len);
    let (ips, devices, networks) = (
        shared("shared_ips"),
        shared("shared_devices"),
        shared("shared_networks"),
    );
    match (case.field, case.holds) {
        ("ip", Holds::Nothing) => assert_eq!(ips, 0, "{what}: {report}"),
        ("ip", _) if case.column == "masked_ip_network" => {
            assert_eq!((ips, networks), (0, 1), "{what}: {report}")
        }
        ("device_id", Holds::Nothing) => assert_eq!(devices, 0, "{what}: {report}"),
        _ => assert_eq!((ips, devices), (1, 1), "{what}: {report}"),
    }
    if let ("ip" | "device_id", Holds::Pseudonym { .. }) = (case.field, case.holds) {
        let list = match (case.field, case.column) {
            ("device_id", _) => &report["shared_devices"],
            (_, "masked_ip_network") => &report["shared_networks"],
            _ => &report["shared_ips"],
        };
        assert_eq!(list[0]["users"], 2, "{what}: {report}");
    }

    // What `reveal` gives back: the value for a revealable choice, never otherwise.
    let reveal =
        run_binary(binary(&queue, &db).args(["reveal", "--user-id", "u1", "--reason", "t"]));
    let shown = all_output(&reveal);
    assert!(shown.contains("revealed 1 rows"), "{what}: {shown}");
    for (field, value) in [("ip", IP_A), ("device_id", DEVICE_A)] {
        let revealable = field == case.field
            && matches!(case.holds, Holds::Pseudonym { revealable: true })
            && case.column != "masked_ip_network";
        assert_eq!(
            shown.contains(value),
            revealable,
            "{what}: reveal showed {shown}"
        );
    }
    if let (Holds::Pseudonym { revealable }, Some(mask)) = (case.holds, values[0].as_deref()) {
        let field = match case.field {
            "ip" if case.column == "masked_ip_network" => "ip-network",
            "ip" => "ip",
            "device_id" => "device-id",
            _ => "ip",
        };
        if case.field != "user_id" {
            let out = run_binary(
                binary(&queue, &db)
                    .args(["reveal", "--value", mask, "--field", field, "--reason", "t"]),
            );
            assert_eq!(
                out.status.success(),
                revealable,
                "{what}: {}",
                all_output(&out)
            );
            if revealable {
                assert!(
                    all_output(&out).contains(raw(case.field)),
                    "{what}: {}",
                    all_output(&out)
                );
            }
        }
    }

    // `erase` by the id the subject gives takes their row, whatever the policy stores.
    let out = run_ok(binary(&queue, &db).args(["erase", "--user-id", "u1", "--reason", "t"]));
    assert!(
        all_output(&out).contains("erased 1 rows"),
        "{what}: {}",
        all_output(&out)
    );
    let left: i64 = (client.query_one("SELECT count(*) FROM user_logins", &[]))
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 2, "{what}");

    let dump = db.dump_all_tables().await;
    for value in [IP_A, IP_B, DEVICE_A, DEVICE_B] {
        assert!(!dump.contains(value), "{what}: {value} is stored");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_ip_choice_lands_reports_reveals_and_erases_as_it_says() {
    for case in IP_CASES {
        check(case).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_device_id_choice_lands_reports_reveals_and_erases_as_it_says() {
    for case in DEVICE_CASES {
        check(case).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_other_choice_lands_reports_reveals_and_erases_as_it_says() {
    for case in OTHER_CASES {
        check(case).await;
    }
}
