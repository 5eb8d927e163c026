//! PostgreSQL failures and their dispositions. Class 22 (data exception) and 23 (integrity
//! constraint violation) blame the rows: their messages can quote values, so only names are kept.

use tokio_postgres::error::SqlState;

use crate::retry::{Classify, Disposition};

/// What went wrong talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The database URL does not parse.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// Authentication failed, the database is missing, permission is denied, or the server's
    /// certificate was refused.
    #[error("PostgreSQL refused {target}: {message}")]
    Fatal {
        /// user@host:port/db, without password.
        target: String,
        /// Server message.
        message: String,
    },
    /// Something the connection needs is not configured (IAM authentication without a region
    /// or without AWS credentials).
    #[error("{0}")]
    NotConfigured(String),
    /// The schema is not what this version expects (an edited migration).
    #[error("{0}")]
    Schema(String),
    /// A key id of the key ring stands for another key than the one that masked stored rows.
    #[error("{0}")]
    KeyReplaced(String),
    /// PostgreSQL refused the data itself (a constraint, a value it can't store).
    #[error("PostgreSQL rejected the data: {reason}")]
    Rejected {
        /// SQLSTATE, condition and constraint/column names; never values.
        reason: String,
    },
    /// The server is read-only, shutting down or not accepting connections, or the connection
    /// broke: the connection is dropped and a new one (resolving the name afresh) tried soon.
    #[error("PostgreSQL error on {target}: {message}")]
    Failover {
        /// user@host:port/db, without password.
        target: String,
        /// What the server said.
        message: String,
    },
    /// Rows of the batch were sealed under period keys shredded since (or none was known): the
    /// committer reads those keys again and makes the rows again, nothing was written. Only a
    /// commit says so (never a probe), and the committer never retries it as it is.
    #[error("period keys changed while the batch was made (shredded: {})", periods.join(", "))]
    StalePeriodKeys {
        /// The periods whose keys must be read again.
        periods: Vec<String>,
    },
    /// Connection lost, server down, serialization failure and the like.
    #[error("PostgreSQL error on {target}: {message}")]
    Transient {
        /// user@host:port/db, without password.
        target: String,
        /// Error text, including the server's message when there is one.
        message: String,
    },
}

/// How long a failover may make a write wait between attempts: Aurora promotes a reader in
/// seconds, and each attempt is one cheap connection.
const FAILOVER_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Classify for SinkError {
    fn max_wait(&self) -> Option<std::time::Duration> {
        matches!(self, SinkError::Failover { .. }).then_some(FAILOVER_MAX_WAIT)
    }

    fn disposition(&self) -> Disposition {
        match self {
            SinkError::Transient { .. }
            | SinkError::Failover { .. }
            | SinkError::StalePeriodKeys { .. } => Disposition::Retry,
            SinkError::Rejected { .. } => Disposition::Isolate,
            SinkError::InvalidUrl(_)
            | SinkError::NotConfigured(_)
            | SinkError::Fatal { .. }
            | SinkError::Schema(_)
            | SinkError::KeyReplaced(_) => Disposition::Stop,
        }
    }
}

fn causes(err: &tokio_postgres::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(err), |e| e.source())
}

/// Whether a connection that gave this error must be dropped: 25006 (read-only transaction: a
/// standby, or a writer demoted by failover), 57P01/57P02/57P03 (shutting down, crashed, not
/// accepting connections yet) and any connection exception (class 08).
pub(super) fn needs_new_connection(err: &tokio_postgres::Error) -> bool {
    err.code().is_some_and(|code| {
        let code = code.code();
        code == "25006" || code.starts_with("57P0") || code.starts_with("08")
    })
}

/// Classify a driver error for the database `target` (user@host:port/db).
pub(super) fn classify(err: tokio_postgres::Error, target: &str) -> SinkError {
    if let Some(db) = err.as_db_error() {
        let code = db.code().code();
        if code.starts_with("22") || code.starts_with("23") {
            let mut reason = format!("SQLSTATE {code}");
            if let Some(constraint) = db.constraint() {
                reason.push_str(&format!(", constraint `{constraint}`"));
            }
            if let Some(column) = db.column() {
                reason.push_str(&format!(", column `{column}`"));
            }
            if let Some(table) = db.table() {
                reason.push_str(&format!(", table `{table}`"));
            }
            return SinkError::Rejected { reason };
        }
    }
    let tls_error = causes(&err).find_map(|e| {
        e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        })
    });
    let certificate_refused = matches!(tls_error, Some(rustls::Error::InvalidCertificate(_)));
    // tokio-postgres says so in a cause of its own TLS error kind (not a rustls error).
    let no_tls_offered = causes(&err).any(|e| e.to_string() == "server does not support TLS");
    let message = match (err.as_db_error(), tls_error) {
        (Some(db), _) if db.code().code() == "25006" => format!(
            "the server is read-only (a standby, or a writer demoted by failover): {} (25006); \
             reconnecting to find the writer",
            db.message()
        ),
        (Some(db), _) => format!("{} ({})", db.message(), db.code().code()),
        (
            None,
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)),
        ) => "the server's certificate is signed by a CA this machine does not trust: pass the \
             CA bundle with --database-ca-file (or sslrootcert= in the URL); for RDS/Aurora, \
             the RDS CA bundle"
            .to_string(),
        (None, _) if no_tls_offered => "the server offers no TLS, and TLS is required (the \
             default for a host off this machine): enable TLS on the server, or put \
             sslmode=disable in the URL if the network between you is trusted"
            .to_string(),
        // "error performing TLS handshake" alone doesn't say why: add the causes.
        (None, _) => causes(&err).fold(err.to_string(), |text, cause| format!("{text}: {cause}")),
    };
    let fatal = certificate_refused
        || no_tls_offered
        || err.code().is_some_and(|code| {
            [
                SqlState::INVALID_PASSWORD,
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                SqlState::INVALID_CATALOG_NAME,
                SqlState::INSUFFICIENT_PRIVILEGE,
            ]
            .contains(code)
        });
    let target = target.to_string();
    if fatal {
        SinkError::Fatal { target, message }
    } else if needs_new_connection(&err) {
        SinkError::Failover { target, message }
    } else {
        SinkError::Transient { target, message }
    }
}
