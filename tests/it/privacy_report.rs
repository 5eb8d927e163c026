//! `report privacy` against real PostgreSQL: the attack it runs on the live table recovers every
//! `sha256` mask of the stated space and none of the keyed ones, and it reports the policy in
//! force and the audit's counts.

use serde_json::{json, Value};

use crate::helpers::*;

/// 40 logins from 10.42.0.0/16 with device ids of the take-home's shape.
fn logins() -> Vec<String> {
    (0..40)
        .map(|i| {
            json!({"user_id": format!("rp-{i}"), "device_type": "ios",
                "ip": format!("10.42.{}.{}", i / 7, 10 + i), "device_id": format!("593-47-{:04}", 1000 + i),
                "locale": "NZ", "app_version": "1.2.3"})
            .to_string()
        })
        .collect()
}

async fn report(queue: &TestQueue, db: &TestDb) -> Value {
    let out = run_ok(binary(queue, db).args([
        "report",
        "privacy",
        "--attack-ipv4",
        "10.42.0.0/16",
        "--attack-device-id",
        "593-47-####",
        "--format",
        "json",
    ]));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (strategy, masks, recovered) of each attack, ip first.
fn findings(report: &Value) -> Vec<(String, u64, u64)> {
    report["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["findings"].as_array().unwrap().clone())
        .map(|f| {
            (
                f["strategy"].as_str().unwrap().to_string(),
                f["masks"].as_u64().unwrap(),
                f["recovered"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_attack_finds_every_unkeyed_mask_and_no_keyed_one() {
    for (strategy, recovered) in [("sha256", 40), ("hmac-sha256", 0), ("aes-siv", 0)] {
        let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
        queue.send(&logins()).await;
        run_drain(&queue, &db, &["--mask-strategy", strategy]);
        let report = report(&queue, &db).await;
        assert_eq!(
            findings(&report),
            vec![
                (strategy.to_string(), 40, recovered),
                (strategy.to_string(), 40, recovered)
            ],
            "{strategy}: (strategy, masks, recovered) for masked_ip, masked_device_id"
        );
        assert_eq!(report["attacks"][0]["candidates"], 65_536);
        assert_eq!(
            report["policy"]["fingerprint"],
            login_etl::policy::Policy::seed().fingerprint()
        );
        // A run without --policy records what its flags store, under a name of its own.
        let in_force = report["policy"]["in_force"]["fingerprint"]
            .as_str()
            .unwrap();
        assert!(in_force.starts_with("pol-"), "{in_force}");
        // No raw value in the report, whatever the strategy.
        let text = report.to_string();
        assert!(
            !text.contains("10.42.") || text.matches("10.42.").count() == 1,
            "{text}"
        );
        assert!(!text.contains("593-47-1"), "a raw device id in {text}");
    }
}
