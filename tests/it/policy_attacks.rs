//! The attack review's cases against `run --policy` (helper-29), kept as regressions: a least-privilege
//! writer and a second consumer cannot store a filled column another way, `ipcrypt-pfx` under a
//! policy stays revealable and re-keyable, and `check` predicts what `run` will refuse.

use crate::helpers::*;
use serde_json::json;

const P1: &str = "version = 1\n[user_id]\nstore = \"keep\"\n[ip]\nstore = \"hmac\"\n[device_id]\nstore = \"hmac\"\nscope = \"month\"\n[device_type]\nstore = \"keep\"\n[locale]\nstore = \"keep\"\n[app_version]\nstore = \"keep\"\n[create_date]\nstore = \"keep\"\n[sent_at]\nstore = \"keep\"\n";

fn p2() -> String {
    P1.replace("store = \"hmac\"\nscope = \"month\"", "store = \"hmac\"")
}

fn login(user: &str, time: &str) -> String {
    json!({"version": "0", "id": format!("ev-{user}-{time}"), "detail-type": "UserLogin",
        "source": "app.auth", "time": time, "detail": {"user_id": user, "device_type": "ios",
        "ip": "203.0.113.9", "device_id": "593-47-5928", "locale": "NZ", "app_version": "2.3.0"}})
    .to_string()
}

fn policy_file(text: &str) -> String {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("login-etl-attack")));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

async fn distinct_device_masks(db: &TestDb) -> i64 {
    db.scalar("SELECT count(DISTINCT masked_device_id) FROM user_logins")
        .await
}

/// A least-privilege writer (docs/least-privilege.sql) is let through with a policy that stores
/// a filled column another way, when the rows were written before policies were recorded.
#[tokio::test(flavor = "multi_thread")]
async fn attack_least_privilege_writer_changes_a_filled_column() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    queue.send(&[login("a", "2026-01-10T08:30:00Z")]).await;
    run_drain(&queue, &db, &[]); // legacy: hmac for all time, nothing recorded
    let (_role, url) = least_privilege_role(&db, "attackw").await;
    let monthly = policy_file(P1);
    queue.send(&[login("b", "2026-01-11T08:30:00Z")]).await;
    let out = run_binary(binary_for(&queue, &url).args(["run", "--drain", "--policy", &monthly]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "exit: {:?}; last lines: {}",
        out.status.code(),
        stderr.lines().rev().take(2).collect::<Vec<_>>().join(" | ")
    );
    assert_eq!(
        db.counts().await.rows,
        1,
        "the writer must refuse: rows now hold {} different masks of one device",
        distinct_device_masks(&db).await
    );
}

/// Rolling deploy: consumer A (P1) runs; consumer B (P2, which stores `masked_device_id` another
/// way) starts before A has written a row: B is refused, though no column holds a value yet.
#[tokio::test(flavor = "multi_thread")]
async fn attack_two_consumers_with_different_policies() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let (f1, f2) = (policy_file(P1), policy_file(&p2()));
    let mut a = Spawned::new(binary(&queue, &db).args(["run", "--policy", &f1]));
    let mut recorded = false;
    for _ in 0..240 {
        let n: i64 = db
            .scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'privacy_policy'")
            .await;
        if n == 1
            && db
                .scalar::<i64>("SELECT count(*) FROM privacy_policy")
                .await
                == 1
        {
            recorded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(recorded, "A never recorded its policy");
    let b = run_binary(binary(&queue, &db).args(["run", "--drain", "--policy", &f2]));
    a.sigterm();
    let _ = a.child.wait();
    let stderr = String::from_utf8_lossy(&b.stderr);
    assert!(!b.status.success(), "B was let in: {stderr}");
    assert!(
        stderr.contains("user_logins.masked_device_id is stored as `hmac/month`"),
        "{stderr}"
    );
}

const K1: &str = "k1:5151515151515151515151515151515151515151515151515151515151515151";
const K2: &str = "k2:5252525252525252525252525252525252525252525252525252525252525252";

/// `ip = "ipcrypt-pfx"` puts its `k1:pfx:` value where `--ip-network-mask ipcrypt-pfx` does
/// (`masked_ip_network`), so reveal, report, status and rekey all handle it.
#[tokio::test(flavor = "multi_thread")]
async fn attack_ipcrypt_pfx_in_masked_ip() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let pfx = policy_file(
        &P1.replace("[ip]\nstore = \"hmac\"", "[ip]\nstore = \"ipcrypt-pfx\"")
            .replace("store = \"hmac\"\nscope = \"month\"", "store = \"aes-siv\""),
    );
    queue.send(&[login("a", "2026-01-10T08:30:00Z")]).await;
    let with = |ring: &str| {
        let mut cmd = binary(&queue, &db);
        cmd.env("LOGIN_ETL_MASK_KEY", ring);
        cmd
    };
    run_ok(with(K1).args(["run", "--drain", "--policy", &pfx]));
    let stored: String = db
        .scalar("SELECT masked_ip_network FROM user_logins WHERE masked_ip IS NULL")
        .await;
    eprintln!("masked_ip = {stored}");
    let ring = format!("{K2},{K1}");
    let mut failed = Vec::new();
    for args in [
        vec!["reveal", "--user-id", "a", "--reason", "t"],
        vec!["report", "duplicates"],
        vec!["status"],
        vec!["rekey", "--to", "k2", "--reason", "rotation"],
        vec!["reveal", "--user-id", "a", "--reason", "t2"],
    ] {
        let key = if args[0] == "rekey" || args.last() == Some(&"t2") {
            ring.as_str()
        } else {
            K1
        };
        let out = run_binary(with(key).args(&args));
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rfind(|l| !l.contains("DEBUG") && !l.contains("TRACE"))
            .unwrap_or("")
            .to_string();
        eprintln!(
            "{args:?}: ok={} stdout={} | {last}",
            out.status.success(),
            String::from_utf8_lossy(&out.stdout)
                .replace('\n', " / ")
                .chars()
                .take(400)
                .collect::<String>()
        );
        if !out.status.success() {
            failed.push(format!("{args:?}: {last}"));
        }
    }
    let after: String = db.scalar("SELECT masked_ip_network FROM user_logins").await;
    eprintln!("masked_ip after rekey = {after}");
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(stored.starts_with("k1:pfx:"), "{stored}");
    assert!(
        after.starts_with("k2:pfx:"),
        "rekey moved it to k2: {after}"
    );
}

/// After rows were written under a policy: what `report privacy` and `check` say, without a file.
#[tokio::test(flavor = "multi_thread")]
async fn attack_report_privacy_and_check_ignore_the_policy_in_force() {
    let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
    let monthly = policy_file(P1);
    queue.send(&[login("a", "2026-01-10T08:30:00Z")]).await;
    run_drain(&queue, &db, &["--policy", &monthly]);
    let report = run_binary(binary(&queue, &db).args(["report", "privacy"]));
    let out = String::from_utf8_lossy(&report.stdout);
    eprintln!(
        "report privacy: ok={} {}",
        report.status.success(),
        out.lines().take(4).collect::<Vec<_>>().join(" / ")
    );
    let check = run_binary(binary(&queue, &db).args(["check"]));
    eprintln!(
        "check: ok={} {}",
        check.status.success(),
        String::from_utf8_lossy(&check.stdout)
            .lines()
            .filter(|l| l.contains("user_logins") || l.contains("policy"))
            .collect::<Vec<_>>()
            .join(" / ")
    );
    let run = run_binary(binary(&queue, &db).args(["run", "--drain"]));
    eprintln!(
        "run: ok={} {}",
        run.status.success(),
        String::from_utf8_lossy(&run.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
    let in_force: String = db.scalar("SELECT fingerprint FROM privacy_policy").await;
    assert!(
        out.contains(&in_force),
        "report privacy names the policy in force: {out}"
    );
    assert!(
        !run.status.success(),
        "a run without the policy would store hmac for all time"
    );
    assert_eq!(
        check.status.success(),
        run.status.success(),
        "check predicts run"
    );
}
