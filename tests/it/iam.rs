//! RDS IAM tokens: byte for byte what botocore's `generate_db_auth_token` makes for the same
//! credentials, time, region, host, port and user (botocore from the LocalStack venv that
//! scripts/stack-up.sh installs, its clock fixed).

use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;

/// botocore's token, its clock fixed at `epoch` seconds; `crt`: with botocore's awscrt signer
/// (as installed beside LocalStack) instead of its pure-Python one (plain `pip install boto3`).
fn botocore_token(
    crt: bool,
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    key: (&str, &str, Option<&str>),
    epoch: u64,
) -> String {
    let python = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.stack/localstack-venv/bin/python"
    );
    let script = r#"
import datetime, importlib, sys, botocore.auth, botocore.session
host, port, user, region, access, secret, token, epoch = sys.argv[1:]
fixed = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).replace(tzinfo=None)
botocore.auth.get_current_datetime = lambda *a, **k: fixed
if botocore.compat.HAS_CRT:
    crt_auth = importlib.import_module("botocore.crt.auth")
    crt_auth.get_current_datetime = lambda *a, **k: fixed
session = botocore.session.get_session()
session.set_credentials(access, secret, token or None)
rds = session.create_client("rds", region_name=region)
print(rds.generate_db_auth_token(host, int(port), user, region), end="")
"#;
    let out = Command::new(python)
        .env("BOTO_DISABLE_CRT", if crt { "false" } else { "true" })
        .args([
            "-c",
            script,
            host,
            &port.to_string(),
            user,
            region,
            key.0,
            key.1,
        ])
        .arg(key.2.unwrap_or(""))
        .arg(epoch.to_string())
        .output()
        .expect("the LocalStack venv's python (scripts/stack-up.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn tokens_match_botocore_byte_for_byte() {
    let cases = [
        (
            "mydb.cluster-c1.eu-west-1.rds.amazonaws.com",
            5432,
            "login_etl",
            "eu-west-1",
            None,
        ),
        (
            "db.internal",
            6432,
            "login etl+ops@x",
            "us-east-1",
            Some("FQoGZXIvYXdzEJr//////////wEaDO+/token="),
        ),
        ("10.0.0.5", 5432, "ü-user", "ap-southeast-2", None),
    ];
    for (i, (host, port, user, region, session)) in cases.into_iter().enumerate() {
        let epoch = 1_764_561_906 + i as u64 * 86_399;
        let key = (
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session,
        );
        let credentials = Credentials::new(key.0, key.1, session.map(String::from), None, "test");
        let ours = login_etl::sink::rds_auth_token(
            host,
            port,
            user,
            region,
            &credentials,
            SystemTime::UNIX_EPOCH + Duration::from_secs(epoch),
        )
        .unwrap();
        let theirs = botocore_token(false, host, port, user, region, key, epoch);
        assert_eq!(ours, theirs, "case {i}");
        // The awscrt signer orders two parameters differently; the same parameters and the
        // same signature otherwise.
        let crt = botocore_token(true, host, port, user, region, key, epoch);
        let params = |t: &str| {
            let mut p: Vec<String> = t
                .split_once('?')
                .unwrap()
                .1
                .split('&')
                .map(String::from)
                .collect();
            p.sort();
            p
        };
        assert_eq!(params(&ours), params(&crt), "case {i} (awscrt)");
    }
}

/// `--database-iam-auth` refuses a URL that allows plaintext (the token is a bearer secret),
/// and otherwise connects with verified TLS, a token made from the AWS credentials in the
/// environment as the password (the throwaway cluster trusts any).
#[tokio::test(flavor = "multi_thread")]
async fn iam_auth_requires_tls_and_connects_with_a_token() {
    use crate::helpers::*;
    let queue = TestQueue::new(30).await;
    let pki = crate::tls::make_pki("login-etl IAM test CA");
    let cluster = TempCluster::with_tls(&pki.server_cert_pem, &pki.server_key_pem);
    let ca = cluster.dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let iam = |url: &str| {
        let mut cmd = binary_for(&queue, url);
        cmd.env("LOGIN_ETL_DATABASE_IAM_AUTH", "true")
            .env("LOGIN_ETL_DATABASE_CA_FILE", &ca)
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env(
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            )
            .env("AWS_REGION", "eu-west-1")
            .arg("migrate");
        cmd
    };
    let plain = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=disable",
        cluster.port
    );
    let refused = run_binary(&mut iam(&plain));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("needs TLS"),
        "{stderr}"
    );
    let url = format!("postgres://postgres@localhost:{}/postgres", cluster.port);
    let out = run_ok(&mut iam(&url));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("wJalrXUtnFEMI"));
}
