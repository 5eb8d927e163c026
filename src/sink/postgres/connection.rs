//! The connection both database types share: where the database is ([`DbSettings`]), TLS, RDS
//! IAM tokens, a lazy connection that is forgotten after a failure and made again on the next
//! call, and the query helpers everything in this folder uses. The writer ([`PgSink`]) and the
//! operator ([`PgOperator`]) each own one; what they may do over it is theirs.
//!
//! [`PgSink`]: super::PgSink
//! [`PgOperator`]: super::PgOperator

use std::path::PathBuf;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{error, iam, tls, SinkError};

/// Begin a transaction. Behind a pooler in transaction mode (PgBouncer, RDS Proxy) the server
/// connection may have served other clients, whose prepared statements can outlive them there
/// (tokio-postgres names statements `s0`, `s1`, … in every process); `DEALLOCATE ALL` first
/// makes ours never collide with theirs. Every statement login-etl prepares lives inside one
/// transaction, so nothing of ours is lost; on a direct connection it costs one round trip.
/// Always READ COMMITTED, whatever the database's or role's default: the erasure's lock order
/// relies on each statement seeing what committed before it (at REPEATABLE READ the first
/// statement would fix the snapshot before the lock, and an erase would miss rows).
pub(super) async fn begin(
    client: &mut Client,
) -> Result<tokio_postgres::Transaction<'_>, tokio_postgres::Error> {
    let tx = (client.build_transaction())
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await?;
    tx.batch_execute("DEALLOCATE ALL").await?;
    Ok(tx)
}

/// Run `statement` inside a transaction on `client`, so that its prepare and execute round
/// trips stay on one server connection behind a transaction-mode pooler.
async fn pinned<'a, T>(
    client: &'a mut Client,
    statement: impl for<'t> FnOnce(
        &'t tokio_postgres::Transaction<'a>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send + 't>,
    >,
) -> Result<T, tokio_postgres::Error> {
    let tx = begin(client).await?;
    let result = statement(&tx).await?;
    tx.commit().await?;
    Ok(result)
}

/// A database URL, which may hold a password: it never prints, in `Debug` or anywhere else.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL itself, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Ok(Self(url.to_string()))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(<redacted>)")
    }
}

/// Where the database is and how to reach it (`--database-url`, `--database-ca-file`,
/// `--database-iam-auth`); each command builds the database type it needs from it.
#[derive(Debug, Clone)]
pub struct DbSettings {
    /// The URL (libpq form, `sslmode` and `sslrootcert` included); never printed.
    pub url: DatabaseUrl,
    /// PEM CA certificates to trust instead of the system roots (unless the URL names its own).
    pub ca_file: Option<PathBuf>,
    /// Authenticate with RDS IAM tokens (the AWS chain's region) instead of a password.
    pub iam_auth: bool,
}

impl DbSettings {
    /// A database reached by its URL alone: its own password (if any), the system's CA roots.
    pub fn from_url(url: &str) -> Self {
        Self {
            url: DatabaseUrl(url.to_owned()),
            ca_file: None,
            iam_auth: false,
        }
    }
}

/// A connection to the target database; reconnects lazily after a failure.
pub struct PgConnection {
    config: Config,
    tls: MakeRustlsConnect,
    tls_options: tls::TlsOptions,
    /// RDS IAM authentication: a fresh token as the password of every new connection.
    iam: Option<iam::IamAuth>,
    target: String,
    client: Option<Client>,
}

impl std::fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnection")
            .field("target", &self.target)
            .finish()
    }
}

/// `user@host:port/dbname` for messages: never the password.
fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or("?"),
        host,
        port,
        config.get_dbname().unwrap_or("?")
    )
}

impl PgConnection {
    /// Parse the settings (no connection yet).
    pub fn new(settings: &DbSettings) -> Result<Self, SinkError> {
        let connection = Self::with_ca_file(settings.url.expose(), settings.ca_file.as_deref())?;
        if settings.iam_auth {
            return connection.with_iam_auth(None);
        }
        Ok(connection)
    }

    /// Parse the URL, trusting the CA certificates in `ca_file` (PEM) instead of the system
    /// roots unless the URL names its own `sslrootcert`.
    fn with_ca_file(
        database_url: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, SinkError> {
        let (rest, mut tls_options) =
            tls::split_url(database_url).map_err(SinkError::InvalidUrl)?;
        let mut config: Config = rest
            .parse()
            // The parse error never echoes the URL, which may hold a password.
            .map_err(|e: tokio_postgres::Error| SinkError::InvalidUrl(e.to_string()))?;
        tls_options.default_for_hosts(config.get_hosts());
        if tls_options.root_cert.is_none() {
            tls_options.root_cert = ca_file.map(std::path::Path::to_path_buf);
        }
        config.ssl_mode(tls_options.mode);
        let tls = tls::connector(&tls_options).map_err(SinkError::InvalidUrl)?;
        Ok(Self {
            target: describe(&config),
            config,
            tls,
            tls_options,
            iam: None,
            client: None,
        })
    }

    /// Authenticate with RDS IAM tokens (`region`: the database's; `None`, the AWS chain's)
    /// instead of a password. A token is a bearer credential, so TLS is required: without
    /// `sslmode` in the URL it becomes `verify-full`, and an `sslmode` that allows plaintext is
    /// refused.
    fn with_iam_auth(mut self, region: Option<String>) -> Result<Self, SinkError> {
        if self.tls_options.explicit && self.tls_options.may_be_plaintext() {
            return Err(SinkError::InvalidUrl(
                "IAM database authentication sends a token as the password, so it needs TLS: \
                 remove sslmode from the URL or set sslmode=verify-full"
                    .into(),
            ));
        }
        if !self.tls_options.explicit {
            self.tls_options.mode = tokio_postgres::config::SslMode::Require;
            self.tls_options.verify = tls::Verify::Full;
            self.config.ssl_mode(self.tls_options.mode);
            self.tls = tls::connector(&self.tls_options).map_err(SinkError::InvalidUrl)?;
        }
        self.iam = Some(iam::IamAuth::new(region));
        Ok(self)
    }

    /// Why the connection could carry PII in the clear over a network, if it could: a host off
    /// this machine with `sslmode` disable, allow or prefer.
    pub fn plaintext_risk(&self) -> Option<String> {
        let remote = self.config.get_hosts().iter().any(|h| !tls::is_local(h));
        (remote && self.tls_options.may_be_plaintext()).then(|| {
            format!(
                "{} is not on this machine and the URL's sslmode allows plaintext",
                self.target
            )
        })
    }

    /// `user@host:port/db`, for log lines.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether the database answers (`/readyz`).
    /// A read-only server (a standby, or a demoted writer) answers but can't take writes: that
    /// is not ready either, and the connection is dropped so the next probe follows the writer.
    pub(crate) async fn ping(&mut self) -> Result<(), SinkError> {
        let row = self
            .query_one(
                "SELECT current_setting('transaction_read_only') = 'on'",
                &[],
            )
            .await?;
        if row.get::<_, bool>(0) {
            self.forget_connection();
            return Err(SinkError::Failover {
                target: self.target.clone(),
                message: "connected to a read-only server (a standby, or a writer demoted by \
                          failover)"
                    .into(),
            });
        }
        Ok(())
    }

    /// The live client, connecting first if needed.
    pub(super) async fn client(&mut self) -> Result<&mut Client, SinkError> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if self.client.is_none() {
            if let Some(iam) = &self.iam {
                let host = match self.config.get_hosts().first() {
                    Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
                    _ => {
                        return Err(SinkError::InvalidUrl(
                            "IAM database authentication needs a host name, not a socket".into(),
                        ))
                    }
                };
                let port = self.config.get_ports().first().copied().unwrap_or(5432);
                let user = self.config.get_user().unwrap_or_default().to_string();
                let token = iam
                    .token(&host, port, &user)
                    .await
                    .map_err(|e| e.into_sink_error(&self.target))?;
                self.config.password(token);
            }
            let (client, connection) = self
                .config
                .connect(self.tls.clone())
                .await
                .map_err(|e| error::classify(e, &self.target))?;
            let target = self.target.clone();
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(%target, error = %e, "PostgreSQL connection closed");
                }
            });
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// One statement's rows; a broken connection is forgotten, so the next call reconnects.
    /// Every statement with parameters runs in a transaction of its own: tokio-postgres
    /// prepares a named statement and executes it in two round trips, which a pooler in
    /// transaction mode (PgBouncer, RDS Proxy) could send to two different server connections.
    pub(super) async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, SinkError> {
        let result = pinned(self.client().await?, |tx| Box::pin(tx.query(sql, params))).await;
        result.map_err(|e| self.on_error(e))
    }

    /// One statement's single row.
    pub(super) async fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, SinkError> {
        let result = pinned(self.client().await?, |tx| {
            Box::pin(tx.query_one(sql, params))
        })
        .await;
        result.map_err(|e| self.on_error(e))
    }

    /// One statement's row, if any.
    pub(super) async fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, SinkError> {
        let result = pinned(self.client().await?, |tx| {
            Box::pin(tx.query_opt(sql, params))
        })
        .await;
        result.map_err(|e| self.on_error(e))
    }

    /// One statement's count of affected rows.
    pub(super) async fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, SinkError> {
        let result = pinned(self.client().await?, |tx| Box::pin(tx.execute(sql, params))).await;
        result.map_err(|e| self.on_error(e))
    }

    /// Statements without parameters or results (the simple protocol: one message, safe
    /// behind any pooler).
    pub(super) async fn batch_execute(&mut self, sql: &str) -> Result<(), SinkError> {
        let result = self.client().await?.batch_execute(sql).await;
        result.map_err(|e| self.on_error(e))
    }

    /// Drop the connection: the next call connects anew.
    pub(super) fn forget_connection(&mut self) {
        self.client = None;
    }

    /// Classify a failure, forgetting a connection that must not be used again so the next
    /// call reconnects (resolving the host name afresh): one that broke, and one to a server
    /// that is read-only, shutting down or not accepting connections — after an Aurora-style
    /// failover the old writer answers as a reader, and only a new connection reaches the new
    /// writer.
    pub(super) fn on_error(&mut self, err: tokio_postgres::Error) -> SinkError {
        if err.is_closed() || err.as_db_error().is_none() || error::needs_new_connection(&err) {
            self.client = None;
        }
        error::classify(err, &self.target)
    }
}
