//! TLS to PostgreSQL with libpq's `sslmode` meanings, which tokio-postgres only partly knows.
//!
//! | sslmode | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | no | – |
//! | `prefer` (default on loopback and unix sockets) | if the server offers it | no |
//! | `require` | yes | no (as libpq, unless you need more: use `verify-full`) |
//! | `verify-ca` | yes | chain, against `sslrootcert` or the system roots |
//! | `verify-full` (default for any other host) | yes | chain and host name |
//!
//! Unlike libpq, a URL without `sslmode` naming a host off this machine gets `verify-full`: a
//! remote server that offers no TLS (or a certificate nobody vouches for) is refused rather than
//! sent PII in the clear. `sslrootcert=/path/ca.pem` (or `--database-ca-file`; e.g. the RDS CA
//! bundle) replaces the system roots.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How much of the server's certificate to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verify {
    /// Encrypt only (`prefer`, `require`).
    Nothing,
    /// Chain of trust, any host name (`verify-ca`).
    Chain,
    /// Chain of trust and host name (`verify-full`).
    Full,
}

/// TLS settings taken out of the database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    /// What tokio-postgres should negotiate.
    pub(crate) mode: SslMode,
    /// What to check of the certificate.
    pub(crate) verify: Verify,
    /// CA certificates to trust instead of the system roots.
    pub(crate) root_cert: Option<PathBuf>,
    /// Whether the URL said `sslmode` (else the default depends on the host).
    pub(crate) explicit: bool,
}

impl TlsOptions {
    /// The default for a URL without `sslmode`: `verify-full` unless every host is loopback or a
    /// unix socket.
    pub(crate) fn default_for_hosts(&mut self, hosts: &[tokio_postgres::config::Host]) {
        if self.explicit || hosts.iter().all(is_local) {
            return;
        }
        self.mode = SslMode::Require;
        self.verify = Verify::Full;
    }

    /// Whether PII can cross a network in the clear (plaintext, or plaintext as a fallback).
    pub(crate) fn may_be_plaintext(&self) -> bool {
        matches!(self.mode, SslMode::Disable | SslMode::Prefer)
    }
}

/// A unix socket, `localhost`, or a loopback address.
pub(crate) fn is_local(host: &tokio_postgres::config::Host) -> bool {
    match host {
        tokio_postgres::config::Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(_) => true,
    }
}

/// Split libpq's TLS parameters off a `postgres://` URL (or a `key=value` string), returning the
/// rest for tokio-postgres and the TLS options. Errors name the parameter, never the URL.
pub(crate) fn split_url(url: &str) -> Result<(String, TlsOptions), String> {
    let mut sslmode = None;
    let mut root_cert = None;
    let rest = if let Some((base, query)) = url.split_once('?').filter(|_| url.contains("://")) {
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", v)) => sslmode = Some(v.to_string()),
                Some(("sslrootcert", v)) => root_cert = Some(v.to_string()),
                _ => kept.push(pair),
            }
        }
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else if url.contains("://") {
        url.to_string()
    } else {
        let mut kept = Vec::new();
        for token in url.split_whitespace() {
            match token.split_once('=') {
                Some(("sslmode", v)) => sslmode = Some(v.to_string()),
                Some(("sslrootcert", v)) => root_cert = Some(v.to_string()),
                _ => kept.push(token),
            }
        }
        kept.join(" ")
    };
    let explicit = sslmode.is_some();
    let (mode, verify) = match sslmode.as_deref().unwrap_or("prefer") {
        "disable" => (SslMode::Disable, Verify::Nothing),
        "allow" | "prefer" => (SslMode::Prefer, Verify::Nothing),
        "require" => (SslMode::Require, Verify::Nothing),
        "verify-ca" => (SslMode::Require, Verify::Chain),
        "verify-full" => (SslMode::Require, Verify::Full),
        other => {
            return Err(format!(
                "sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
            ))
        }
    };
    let options = TlsOptions {
        mode,
        verify,
        root_cert: root_cert.map(PathBuf::from),
        explicit,
    };
    Ok((rest, options))
}

/// A TLS connector for these options.
pub(crate) fn connector(options: &TlsOptions) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?;
    let config = match options.verify {
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        Verify::Chain | Verify::Full => {
            let roots = Arc::new(root_store(options.root_cert.as_ref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("TLS set-up failed: {e}"))?;
            let verifier: Arc<dyn ServerCertVerifier> = if options.verify == Verify::Full {
                webpki
            } else {
                Arc::new(AnyHostName(webpki))
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

fn root_store(path: Option<&PathBuf>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match path {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read sslrootcert {}: {e}", path.display()))?;
            for cert in certs {
                let cert =
                    cert.map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
                store
                    .add(cert)
                    .map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
        }
    }
    if store.is_empty() {
        return Err("no CA certificates to verify the server with: set sslrootcert".into());
    }
    Ok(store)
}

/// `require`/`prefer`: encryption without authentication of the server, as libpq does. The
/// handshake signature is still checked, so the session key belongs to the certificate's key.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the full chain check, minus the host name.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_modes_map_onto_what_tokio_postgres_knows() {
        let (rest, o) = split_url(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u@h/db?application_name=x");
        assert_eq!((o.mode, o.verify), (SslMode::Require, Verify::Full));
        assert_eq!(o.root_cert, Some(PathBuf::from("/ca.pem")));

        let (rest, o) = split_url("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!((o.mode, o.verify), (SslMode::Require, Verify::Nothing));

        let (_, o) = split_url("postgres://u@h/db").unwrap();
        assert_eq!((o.mode, o.explicit), (SslMode::Prefer, false));

        let (rest, o) = split_url("host=h user=u sslmode=verify-ca").unwrap();
        assert_eq!(rest, "host=h user=u");
        assert_eq!((o.mode, o.verify), (SslMode::Require, Verify::Chain));

        assert!(split_url("postgres://h/db?sslmode=bogus")
            .unwrap_err()
            .contains("bogus"));
    }

    #[test]
    fn without_sslmode_only_local_hosts_may_go_unverified() {
        let defaulted = |url: &str| {
            let (rest, mut o) = split_url(url).unwrap();
            let config: tokio_postgres::Config = rest.parse().unwrap();
            o.default_for_hosts(config.get_hosts());
            (o.mode, o.verify)
        };
        let full = (SslMode::Require, Verify::Full);
        let prefer = (SslMode::Prefer, Verify::Nothing);
        assert_eq!(defaulted("postgres://u@db.example.com/x"), full);
        assert_eq!(defaulted("postgres://u@10.0.0.5:5432/x"), full);
        assert_eq!(defaulted("postgres://u@127.0.0.1/x"), prefer);
        assert_eq!(defaulted("postgres://u@localhost/x"), prefer);
        assert_eq!(defaulted("postgres://u@[::1]/x"), prefer);
        assert_eq!(defaulted("host=/var/run/postgresql user=u"), prefer);
        assert_eq!(defaulted("postgres://u@127.0.0.1,db.example.com/x"), full);
        assert_eq!(
            defaulted("postgres://u@db.example.com/x?sslmode=disable"),
            (SslMode::Disable, Verify::Nothing)
        );
    }
}
