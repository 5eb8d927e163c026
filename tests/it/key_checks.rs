//! Operator commands check the key ring (issue 32, item 4): `rekey`, `reveal`, `erase` and
//! `retire-key` refuse a ring whose key for a recorded id is another key, before touching
//! anything and without printing key material; `rekey --to` records the key it writes under, so
//! a consumer with another key under that id is refused afterwards; `rekey` and `retire-key`
//! cover `extra_fields` too.

use login_etl::mask::{KeyRing, Masker, StrategyName};
use serde_json::json;

use crate::helpers::*;

const K1: &str = "k1:7171717171717171717171717171717171717171717171717171717171717171";
const K2: &str = "k2:7272727272727272727272727272727272727272727272727272727272727272";
/// Another key under the id `k1` (and one under `k2`).
const K1_OTHER: &str = "k1:8181818181818181818181818181818181818181818181818181818181818181";
const K2_OTHER: &str = "k2:8282828282828282828282828282828282828282828282828282828282828282";

fn with(queue: &TestQueue, db: &TestDb, ring: &str) -> std::process::Command {
    let mut cmd = binary(queue, db);
    cmd.env("LOGIN_ETL_MASK_KEY", ring)
        .env("LOGIN_ETL_MASK_STRATEGY", "aes-siv");
    cmd
}

fn login(user: &str, ip: &str) -> String {
    json!({"user_id": user, "ip": ip, "device_id": format!("dev-{ip}"), "device_type": "ios",
           "peer": {"addr": ip}})
    .to_string()
}

/// A refusal that names the replaced key and shows no key material.
fn assert_refused_for_k1(out: &std::process::Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} was accepted: {stderr}");
    assert!(
        stderr.contains("is not the key that masked the stored rows") && stderr.contains("`k1`"),
        "{what}: {stderr}"
    );
    for key in [K1, K1_OTHER, K2] {
        let material = key.split_once(':').unwrap().1;
        assert!(!stderr.contains(material), "{what} printed key material");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_key_is_refused_by_every_operator_command_and_nothing_changes() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let user = unique("keys");
    queue.send(&[login(&user, "198.51.100.71")]).await;
    run_ok(with(&queue, &db, K1).args(["run", "--drain"]));
    let before = db.dump_all_tables().await;

    let replaced = format!("{K2},{K1_OTHER}");
    let commands: [&[&str]; 5] = [
        &["rekey", "--to", "k2"],
        &["reveal", "--user-id", &user, "--reason", "t"],
        &["erase", "--user-id", &user, "--reason", "dsr"],
        &["erase", "--user-id", &user, "--reason", "dsr", "--dry-run"],
        &["retire-key", "--id", "k9"],
    ];
    for args in commands {
        let out = run_binary(with(&queue, &db, &replaced).args(args));
        assert_refused_for_k1(&out, &args.join(" "));
    }
    // Nothing was re-keyed, erased, audited or recorded.
    assert_eq!(db.dump_all_tables().await, before);
    let recorded: i64 = db
        .scalar("SELECT count(*) FROM mask_key_fingerprints WHERE key_id = 'k2'")
        .await;
    assert_eq!(recorded, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_rekey_to_k2_a_consumer_with_another_k2_is_refused() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    queue.send(&[login(&unique("keys"), "198.51.100.72")]).await;
    run_ok(with(&queue, &db, K1).args(["run", "--drain"]));
    run_ok(with(&queue, &db, &format!("{K2},{K1}")).args(["rekey", "--to", "k2"]));
    let recorded: i64 = db
        .scalar("SELECT count(*) FROM mask_key_fingerprints WHERE key_id = 'k2'")
        .await;
    assert_eq!(recorded, 1, "rekey recorded the key it wrote under");

    let out = run_binary(with(&queue, &db, &format!("{K2_OTHER},{K1}")).args(["run", "--drain"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a consumer with another k2 ran");
    assert!(stderr.contains("`k2`"), "{stderr}");
    // An operator with another k2 is refused too.
    let out =
        run_binary(with(&queue, &db, &format!("{K2_OTHER},{K1}")).args(["rekey", "--to", "k2"]));
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn rekey_moves_masks_in_extra_fields_and_retire_key_counts_them() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let ip = "198.51.100.73";
    // A producer's kept text that starts like a k1 mask is not one: it neither stops `rekey`
    // nor keeps k1 in use.
    let mut posing =
        serde_json::from_str::<serde_json::Value>(&login(&unique("keys"), ip)).unwrap();
    posing["source"] = json!("k1:x");
    posing["peer"]["Type"] = json!("k1:not-a-mask");
    queue.send(&[posing.to_string()]).await;
    run_ok(with(&queue, &db, K1).args(["run", "--drain", "--keep-extra-fields"]));
    let mask = |key: &str| {
        let masker = Masker::new(StrategyName::AesSiv, Some(&KeyRing::parse(key).unwrap()));
        masker.unwrap().mask_ip(&ip.parse().unwrap())
    };
    let extra = |db: &TestDb| {
        let db = db.url.clone();
        async move {
            pg_client(&db)
                .await
                .query_one("SELECT extra_fields::text FROM user_logins", &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    let stored = extra(&db).await;
    assert!(
        stored.contains(&mask(K1)),
        "the address in extra_fields is a k1 mask: {stored}"
    );

    let ring = format!("{K2},{K1}");
    run_ok(with(&queue, &db, &ring).args(["rekey", "--to", "k2"]));
    let moved = extra(&db).await;
    assert!(
        !moved.contains(&mask(K1)),
        "a k1 mask stayed in extra_fields: {moved}"
    );
    assert!(moved.contains(&mask(K2)), "{moved}");
    for posing in [r#""source": "k1:x""#, r#""Type": "k1:not-a-mask""#] {
        assert!(
            moved.contains(posing),
            "the producer's text is kept as it was: {moved}"
        );
    }
    run_ok(with(&queue, &db, &ring).args(["retire-key", "--id", "k1"]));

    // A k1 mask left in extra_fields alone keeps k1 in use.
    (db.client().await)
        .execute(
            "UPDATE user_logins SET extra_fields = $1::text::jsonb",
            &[&stored],
        )
        .await
        .unwrap();
    let out = run_binary(with(&queue, &db, &ring).args(["retire-key", "--id", "k1"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "retired a key extra_fields still use"
    );
    assert!(stderr.contains("1 extra_fields"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retire_key_keeps_the_last_key_an_erasure_was_recorded_under() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let subject = unique("erased-under-k1");
    run_ok(with(&queue, &db, K1).args(["migrate"]));
    run_ok(with(&queue, &db, K1).args(["erase", "--user-id", &subject, "--reason", "dsr-k"]));
    let ring = format!("{K2},{K1}");
    let out = run_binary(with(&queue, &db, &ring).args(["retire-key", "--id", "k1"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "retired the only key of an erasure");
    assert!(
        stderr.contains("the only key 1 erasure(s) were recorded under"),
        "{stderr}"
    );
    // Erased again with both keys in the ring: the record holds under k2 as well, k1 can go,
    // and a writer with k2 alone still leaves out the subject's earlier login.
    queue.send(&[login(&subject, "198.51.100.74")]).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    run_ok(with(&queue, &db, &ring).args(["erase", "--user-id", &subject, "--reason", "dsr-k"]));
    run_ok(with(&queue, &db, &ring).args(["retire-key", "--id", "k1"]));
    run_ok(with(&queue, &db, K2).args(["run", "--drain"]));
    assert_eq!(queue.remaining().await, 0);
    let rows: i64 = db.scalar("SELECT count(*) FROM user_logins").await;
    assert_eq!(rows, 0, "the erasure holds under k2 alone");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_with_no_recorded_fingerprint_is_proved_before_it_decrypts() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    queue
        .send(&[login(&unique("legacy"), "198.51.100.75")])
        .await;
    // hmac masks (one-way) and ipcrypt-pfx pseudonyms under k1, as rows written before key
    // fingerprints were recorded (migration 11) have them.
    run_ok(
        with(&queue, &db, K1)
            .env("LOGIN_ETL_MASK_STRATEGY", "hmac-sha256")
            .env("LOGIN_ETL_IP_NETWORK_MASK", "ipcrypt-pfx")
            .args(["run", "--drain"]),
    );
    let pseudonym = "SELECT masked_ip_network FROM user_logins";
    let before: String = db.scalar(pseudonym).await;
    assert!(before.starts_with("k1:pfx:"), "{before}");
    (db.client().await)
        .batch_execute("DELETE FROM mask_key_fingerprints")
        .await
        .unwrap();
    // Another key under k1: a pfx pseudonym opens under it (to a wrong address); nothing proves
    // it, so neither rekey nor reveal uses it.
    let wrong = format!("{K2},{K1_OTHER}");
    let reveal = [
        "reveal",
        "--value",
        &before,
        "--field",
        "ip-network",
        "--reason",
        "t",
    ];
    for args in [&["rekey", "--to", "k2"][..], &reveal[..]] {
        let out = run_binary(with(&queue, &db, &wrong).args(args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} used an unproven k1");
        assert!(
            stderr.contains("nothing can prove the key ring's key for `k1`"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(
        db.scalar::<String>(pseudonym).await,
        before,
        "nothing rewritten"
    );

    // aes-siv masks under an unrecorded k1 prove the key: the wrong one is refused, the right
    // one re-keys.
    (db.client().await)
        .batch_execute("TRUNCATE user_logins")
        .await
        .unwrap();
    queue
        .send(&[login(&unique("legacy"), "198.51.100.76")])
        .await;
    run_ok(with(&queue, &db, K1).args(["run", "--drain"]));
    (db.client().await)
        .batch_execute("DELETE FROM mask_key_fingerprints")
        .await
        .unwrap();
    let out = run_binary(with(&queue, &db, &wrong).args(["rekey", "--to", "k2"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not open the stored `k1` masks"),
        "{stderr}"
    );
    run_ok(with(&queue, &db, &format!("{K2},{K1}")).args(["rekey", "--to", "k2"]));
    let moved: i64 = db
        .scalar("SELECT count(*) FROM user_logins WHERE masked_ip LIKE 'k2:%'")
        .await;
    assert_eq!(moved, 1);
}
