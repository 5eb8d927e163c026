//! TLS to PostgreSQL: libpq's sslmode values are honoured against a real TLS-only server.

use crate::helpers::*;
use login_etl::sink::{DbSettings, PgOperator};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    pub(crate) server_cert_pem: String,
    pub(crate) server_key_pem: String,
}

/// A CA and a server certificate for `localhost` only (not for 127.0.0.1).
pub(crate) fn make_pki(ca_name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_cert_pem: server.pem(),
        server_key_pem: server_key.serialize_pem(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sslmode_is_honoured_against_a_tls_only_server() {
    let pki = make_pki("login-etl test CA");
    let cluster = TempCluster::with_tls(&pki.server_cert_pem, &pki.server_key_pem);
    let ca_path = cluster.dir.join("test-ca.pem");
    std::fs::write(&ca_path, &pki.ca_pem).unwrap();
    let other_ca_path = cluster.dir.join("other-ca.pem");
    std::fs::write(&other_ca_path, make_pki("some other CA").ca_pem).unwrap();
    let url = |host: &str, query: &str| {
        format!(
            "postgres://postgres@{host}:{}/postgres?{query}",
            cluster.port
        )
    };
    let ca = ca_path.display();
    let other_ca = other_ca_path.display();

    // Encrypted connections succeed...
    for ok in [
        url("127.0.0.1", "sslmode=require"),
        url("127.0.0.1", "sslmode=prefer"),
        url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")),
    ] {
        let mut operator = PgOperator::new(&DbSettings::from_url(&ok)).unwrap();
        operator
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    // ...the rest fail at once, with a reason, and without retrying (fatal).
    for (bad, reason) in [
        (url("127.0.0.1", "sslmode=disable"), "no encryption"),
        (
            url(
                "127.0.0.1",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
            "certificate",
        ),
        (
            url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={other_ca}"),
            ),
            "certificate",
        ),
    ] {
        let err = PgOperator::new(&DbSettings::from_url(&bad))
            .unwrap()
            .migrate()
            .await
            .unwrap_err();
        assert!(
            matches!(err, login_etl::sink::SinkError::Fatal { .. }),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains(reason), "{bad}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_drains_over_verified_tls() {
    let pki = make_pki("login-etl test CA");
    let cluster = TempCluster::with_tls(&pki.server_cert_pem, &pki.server_key_pem);
    let ca_path = cluster.dir.join("test-ca.pem");
    std::fs::write(&ca_path, &pki.ca_pem).unwrap();
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        cluster.port,
        ca_path.display()
    );
    let queue = TestQueue::new(30).await;
    queue.send(&sample_bodies()).await;
    let out = run_binary(binary_for(&queue, &url).args(["run", "--drain"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = PgOperator::new(&DbSettings::from_url(&url))
        .unwrap()
        .counts()
        .await
        .unwrap();
    assert_eq!((counts.rows, counts.quarantined()), (99, 1));
}
