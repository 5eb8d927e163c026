//! What the policy tests share: a login in an EventBridge event (its `time` picks the period),
//! the example policies, a policy file of a test's own, and a command's whole output.

use super::unique;

/// A login in an EventBridge event whose `time` is the login's time (so the test picks its
/// period), with `locale` and `app_version`.
pub(crate) fn eventbridge_login(user: &str, ip: &str, device: &str, time: &str) -> String {
    serde_json::json!({"version": "0", "id": format!("ev-{user}-{time}"),
        "detail-type": "UserLogin", "source": "app.auth", "time": time,
        "detail": {"user_id": user, "device_type": "ios", "ip": ip, "device_id": device,
            "locale": "NZ", "app_version": "2.3.0"}})
    .to_string()
}

/// The path of `examples/policies/<name>`.
pub(crate) fn example_policy(name: &str) -> String {
    format!("{}/examples/policies/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A policy file of its own (tests run in parallel), left in the temporary directory.
pub(crate) fn temp_policy(text: &str) -> String {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("login-etl-policy")));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Standard output then standard error, as text.
pub(crate) fn all_output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
