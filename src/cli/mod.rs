//! Command-line interface: the flag groups several commands share (queue, database, keys,
//! network pseudonyms). The top-level parser (`commands::Cli`) and each command's own flags live
//! with their code in `commands/`. Every flag can also be set from an environment variable, so the same
//! binary is configured by flags on a laptop and by env vars in a container.

use std::path::PathBuf;

use clap::Args;
use url::Url;

use crate::mask::NetworkPrefixes;
use crate::sink::{DatabaseUrl, DbSettings};
use crate::source::SqsSettings;

mod values;
pub use values::{
    audit_text, EnvelopeArg, FieldArg, NetworkMaskArg, ReportFormat, SqsProtocolArg, StrategyArg,
};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (timestamp, level, target, message, fields).
    Json,
}

/// Where the queue is.
#[derive(Debug, Clone, Args)]
pub struct SqsArgs {
    /// SQS endpoint URL, e.g. http://127.0.0.1:4566 for LocalStack. Empty: real AWS, with the default
    /// credential chain (env, profile, instance/task role).
    #[arg(
        long,
        env = "LOGIN_ETL_SQS_ENDPOINT",
        default_value = "",
        hide_default_value = true
    )]
    pub sqs_endpoint: Endpoint,
    /// AWS region. Default: from the AWS config chain; us-east-1 with a custom endpoint.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Full queue URL. Takes precedence over --queue-name.
    #[arg(long, env = "LOGIN_ETL_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// Queue name, resolved to a URL at start.
    #[arg(long, env = "LOGIN_ETL_QUEUE_NAME", default_value = "login-queue")]
    pub queue_name: String,
    /// SQS wire protocol. `auto` speaks JSON and switches to the older query protocol when the
    /// endpoint speaks only that (LocalStack before 3.0, as in the take-home's docker-compose);
    /// AWS itself is never switched.
    #[arg(long, env = "LOGIN_ETL_SQS_PROTOCOL", value_enum, default_value_t = SqsProtocolArg::Auto)]
    pub sqs_protocol: SqsProtocolArg,
    /// S3 endpoint URL for the objects S3 notifications on the queue name (path-style). Empty: the
    /// --sqs-endpoint if one is given (LocalStack serves both), else AWS.
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL_S3",
        default_value = "",
        hide_default_value = true
    )]
    pub s3_endpoint: Endpoint,
}

/// Network pseudonyms (`masked_ip_network`).
#[derive(Debug, Clone, Args)]
pub struct NetworkArgs {
    /// Also store a pseudonym of each address's network, so logins can be grouped by network
    /// without seeing addresses: `hmac` (keyed mask of the /24 or /48, one-way; leaks only "same
    /// network or not") or `ipcrypt-pfx` (prefix-preserving encryption; every shared prefix length
    /// shows, reversible by key holders with `reveal`). See docs/privacy.md "Network pseudonyms".
    #[arg(long, env = "LOGIN_ETL_IP_NETWORK_MASK", value_enum, default_value_t = NetworkMaskArg::Off)]
    pub ip_network_mask: NetworkMaskArg,
    /// IPv4 prefix length `hmac` groups by.
    #[arg(long, env = "LOGIN_ETL_IPV4_NETWORK_PREFIX", default_value_t = 24,
          value_parser = clap::value_parser!(u8).range(1..=32))]
    pub ipv4_network_prefix: u8,
    /// IPv6 prefix length `hmac` groups by.
    #[arg(long, env = "LOGIN_ETL_IPV6_NETWORK_PREFIX", default_value_t = 48,
          value_parser = clap::value_parser!(u8).range(1..=128))]
    pub ipv6_network_prefix: u8,
}

impl NetworkArgs {
    /// The mode as the library knows it.
    pub fn mode(&self) -> crate::mask::NetworkMaskMode {
        self.ip_network_mask.into()
    }

    /// The prefix lengths as settings.
    pub fn prefixes(&self) -> NetworkPrefixes {
        NetworkPrefixes {
            v4: self.ipv4_network_prefix,
            v6: self.ipv6_network_prefix,
        }
    }
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL URL, e.g. postgres://login_etl@db.internal:5432/analytics. Prefer the env var when
    /// it contains a password: flags are visible in `ps`.
    #[arg(
        long,
        env = "LOGIN_ETL_DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: DatabaseUrl,
    /// PEM file of the CA certificates that sign the database's certificate (e.g. the RDS CA
    /// bundle, which is not in system stores); replaces the system roots. `sslrootcert=` in the
    /// URL wins. Without `sslmode` in the URL, a host off this machine is verified in full.
    #[arg(long, env = "LOGIN_ETL_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
    /// Authenticate to RDS/Aurora with IAM instead of a password: each new connection gets a
    /// fresh 15-minute token for the URL's host, port and user, signed with the AWS credentials
    /// (the same chain as SQS) for AWS_REGION. Needs TLS (verify-full unless the URL says
    /// otherwise) and `rds-db:connect` on the user; see docs/deploy.md.
    #[arg(long, env = "LOGIN_ETL_DATABASE_IAM_AUTH")]
    pub database_iam_auth: bool,
}

impl DbArgs {
    /// Where the database is and how to reach it; each command builds the type it needs (the
    /// writer, `PgSink`, or the operator's `PgOperator`) from these.
    pub fn settings(&self) -> DbSettings {
        DbSettings {
            url: self.database_url.clone(),
            ca_file: self.database_ca_file.clone(),
            iam_auth: self.database_iam_auth,
        }
    }
}

/// Where the masking keys are.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// File with the masking keys, one `<id>:<hex>` (or `<id>:kms:<base64>`) per line, the active
    /// key first. The keys can instead be given in the environment as LOGIN_ETL_MASK_KEY (entries
    /// separated by commas) — never as a flag, so they stay out of shell history and `ps`. Make a
    /// key with `login-etl keygen`.
    #[arg(long, env = "LOGIN_ETL_MASK_KEY_FILE")]
    pub mask_key_file: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub kms: KmsArgs,
}

/// The privacy policy in force.
#[derive(Debug, Clone, Args)]
pub struct PolicyFileArgs {
    /// Privacy policy file (TOML): what is stored of each field (examples/policies/; check one
    /// with `login-etl policy check FILE`). Without one: what examples/policies/seed.toml says.
    #[arg(long = "policy", env = "LOGIN_ETL_POLICY")]
    pub policy_file: Option<PathBuf>,
}

/// Where AWS KMS is, for `kms:` keys.
#[derive(Debug, Clone, Args)]
pub struct KmsArgs {
    /// AWS KMS endpoint for `kms:` keys (LocalStack URL). Default: the SQS endpoint
    /// (--sqs-endpoint / LOGIN_ETL_SQS_ENDPOINT), else AWS.
    #[arg(
        long,
        env = "LOGIN_ETL_KMS_ENDPOINT",
        default_value = "",
        hide_default_value = true
    )]
    pub kms_endpoint: Endpoint,
}

/// An endpoint URL; empty means "none" (real AWS), so `LOGIN_ETL_SQS_ENDPOINT=` can unset it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint(pub Option<Url>);

impl std::str::FromStr for Endpoint {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self(None));
        }
        let url =
            Url::parse(text).map_err(|e| format!("{e} (expected e.g. http://127.0.0.1:4566)"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err("expected an http:// or https:// URL, e.g. http://127.0.0.1:4566".into());
        }
        Ok(Self(Some(url)))
    }
}

impl From<&SqsArgs> for SqsSettings {
    fn from(args: &SqsArgs) -> Self {
        SqsSettings {
            endpoint: args.sqs_endpoint.0.clone(),
            region: args.region.clone().filter(|r| !r.trim().is_empty()),
            queue_url: args.queue_url.clone().filter(|u| !u.trim().is_empty()),
            queue_name: args.queue_name.clone(),
            protocol: args.sqs_protocol.into(),
            s3_endpoint: args.s3_endpoint.0.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_endpoint_means_none_and_a_bad_one_is_refused() {
        assert_eq!("".parse::<Endpoint>().unwrap(), Endpoint(None));
        assert!("http://127.0.0.1:4566"
            .parse::<Endpoint>()
            .unwrap()
            .0
            .is_some());
        assert!("127.0.0.1:4566".parse::<Endpoint>().is_err());
    }
}
