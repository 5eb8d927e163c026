//! Network pseudonyms against the real stack (`--ip-network-mask hmac|ipcrypt-pfx`): grouping by
//! /24 and /48, never equal to an IP mask, the shared-networks report, audited pfx reveal.

use std::collections::BTreeMap;

use crate::helpers::*;

/// A valid login of `user` from `ip` (the sample's first message with those two changed).
pub(crate) fn login(user: &str, ip: &str) -> String {
    let mut body: serde_json::Value = serde_json::from_str(&sample_bodies()[0]).unwrap();
    body["user_id"] = user.into();
    body["ip"] = ip.into();
    body.to_string()
}

/// Users and the addresses they log in from: three in 10.1.2.0/24 (one as `::ffff:`), one in
/// 10.1.3.0/24, two in 2001:db8:1::/48, one in 2001:db8:2::/48.
const NETWORK_USERS: [(&str, &str); 7] = [
    ("u-a", "10.1.2.3"),
    ("u-b", "10.1.2.200"),
    ("u-c", "::ffff:10.1.2.50"),
    ("u-d", "10.1.3.3"),
    ("u-e", "2001:db8:1:2::1"),
    ("u-f", "2001:db8:1:ffff::2"),
    ("u-g", "2001:db8:2::1"),
];

async fn network_of_user(db: &TestDb) -> BTreeMap<String, String> {
    db.client()
        .await
        .query("SELECT user_id, masked_ip_network FROM user_logins", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn drain_with_network_mode(mode: &str) -> (TestDb, TestQueue, String) {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let bodies: Vec<String> = NETWORK_USERS.iter().map(|(u, ip)| login(u, ip)).collect();
    queue.send(&bodies).await;
    let out = run_ok(
        binary(&queue, &db)
            .env("LOGIN_ETL_MASK_STRATEGY", "aes-siv")
            .env("LOGIN_ETL_IP_NETWORK_MASK", mode)
            .args(["run", "--drain"]),
    );
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_landed(&db, &queue, 7, 0).await;
    (db, queue, log)
}

async fn no_network_mask_equals_an_ip_mask(db: &TestDb) {
    let clashes: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM user_logins a JOIN user_logins b ON a.masked_ip_network = b.masked_ip",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(clashes, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn hmac_network_pseudonyms_group_by_24_and_48_and_are_reported() {
    let (db, queue, log) = drain_with_network_mode("hmac").await;
    let net = network_of_user(&db).await;
    assert_eq!(net["u-a"], net["u-b"]);
    assert_eq!(net["u-a"], net["u-c"], "::ffff: form is the same network");
    assert_ne!(net["u-a"], net["u-d"]);
    assert_eq!(net["u-e"], net["u-f"]);
    assert_ne!(net["u-e"], net["u-g"]);
    assert!(net.values().all(|m| m.starts_with("k1:") && m.len() == 67));
    no_network_mask_equals_an_ip_mask(&db).await;

    let report = run_binary(binary(&queue, &db).args(["report", "duplicates", "--format", "json"]));
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let shared = report["shared_networks"].as_array().unwrap();
    assert_eq!(shared.len(), 2, "{report}");
    assert_eq!(shared[0]["users"], 3);
    assert_eq!(shared[0]["network"], net["u-a"].as_str());
    assert_eq!(shared[1]["users"], 2);

    let raw: Vec<String> = NETWORK_USERS.iter().map(|(_, ip)| ip.to_string()).collect();
    assert_no_raw_pii(&db.dump_all_tables().await, &raw, "the database");
    assert_no_raw_pii(&log, &raw, "the logs");
}

#[tokio::test(flavor = "multi_thread")]
async fn ipcrypt_pfx_pseudonyms_keep_prefixes_and_reveal_under_audit() {
    let (db, queue, log) = drain_with_network_mode("ipcrypt-pfx").await;
    let net = network_of_user(&db).await;
    let encrypted = |user: &str| -> std::net::IpAddr {
        net[user].strip_prefix("k1:pfx:").unwrap().parse().unwrap()
    };
    let first_octets = |user: &str| match encrypted(user) {
        std::net::IpAddr::V4(v4) => v4.octets()[..3].to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets()[..6].to_vec(),
    };
    assert_eq!(first_octets("u-a"), first_octets("u-b"));
    assert_eq!(first_octets("u-a"), first_octets("u-c"));
    assert_ne!(first_octets("u-a"), first_octets("u-d"));
    assert_eq!(first_octets("u-e"), first_octets("u-f"));
    assert_ne!(first_octets("u-e"), first_octets("u-g"));
    no_network_mask_equals_an_ip_mask(&db).await;

    let audits = || async {
        db.client()
            .await
            .query_one("SELECT count(*) FROM mask_reveals", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let before = audits().await;
    let reveal = run_ok(binary(&queue, &db).args([
        "reveal",
        "--reason",
        "network test",
        "--value",
        &net["u-c"],
        "--field",
        "ip-network",
    ]));
    assert_eq!(String::from_utf8_lossy(&reveal.stdout).trim(), "10.1.2.50");
    assert_eq!(audits().await, before + 1, "audited");

    let report = run_binary(binary(&queue, &db).args(["report", "duplicates", "--format", "json"]));
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let shared = report["shared_networks"].as_array().unwrap();
    assert_eq!(
        shared
            .iter()
            .map(|n| n["users"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![3, 2],
        "{report}"
    );
    let raw: Vec<String> = NETWORK_USERS.iter().map(|(_, ip)| ip.to_string()).collect();
    assert_no_raw_pii(&db.dump_all_tables().await, &raw, "the database");
    assert_no_raw_pii(&log, &raw, "the logs");
}
