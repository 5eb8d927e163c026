//! RDS IAM database authentication: the password is a token — a SigV4-presigned
//! `rds-db:connect` request for the host, port and user, accepted for 15 minutes — made from the
//! same AWS credential chain as SQS, through the same cache (`aws::credentials`). A token is
//! reused for 10 minutes, so a failover that reconnects every 2 s asks neither STS nor the chain
//! each time; a fetch that fails is transient (the caller's retry policy tries again), and only
//! "no credentials configured" or no region stops. The same bytes as botocore's
//! `generate_db_auth_token` (tested against it), so what works from Python works here.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use tokio::sync::OnceCell;

use super::error::SinkError;
use crate::aws::credentials::{not_configured, system_clock, Clock};

/// How long a token is accepted for a new connection (RDS's fixed limit).
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// How long a token is reused: well inside its lifetime, so one handed to a connection attempt
/// is never about to lapse.
const TOKEN_REUSE: Duration = Duration::from_secs(600);

/// Where tokens come from: the AWS credential chain (cached) and region, read once, on first
/// use; the last token made. Cheap to clone (clones share both).
#[derive(Clone)]
pub(crate) struct IamAuth {
    region: Option<String>,
    chain: Arc<OnceCell<Chain>>,
    last: Arc<Mutex<Option<Token>>>,
    clock: Clock,
}

/// Never prints a token.
impl std::fmt::Debug for IamAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamAuth")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

struct Chain {
    provider: Option<SharedCredentialsProvider>,
    region: Option<String>,
}

/// A token, what it is for, and until when it is reused.
struct Token {
    target: (String, u16, String),
    text: String,
    reuse_until: SystemTime,
}

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    /// Nothing to make one with: no region, no credentials configured. A person must fix it.
    #[error("{0}")]
    NotConfigured(String),
    /// The credentials could not be fetched this time: worth retrying.
    #[error("IAM database authentication: AWS credentials could not be fetched: {0}")]
    Unavailable(String),
}

impl TokenError {
    /// As the sink's error for a connection to `target`: a stop, or a retry.
    pub(crate) fn into_sink_error(self, target: &str) -> SinkError {
        match self {
            TokenError::NotConfigured(text) => SinkError::NotConfigured(text),
            unavailable @ TokenError::Unavailable(_) => SinkError::Transient {
                target: target.to_string(),
                message: unavailable.to_string(),
            },
        }
    }
}

impl IamAuth {
    /// Tokens for `region` (`None`: the AWS chain's region, e.g. `AWS_REGION`).
    pub(crate) fn new(region: Option<String>) -> Self {
        Self {
            region,
            chain: Default::default(),
            last: Default::default(),
            clock: system_clock(),
        }
    }

    /// Tokens from `provider`, with `clock` (tests).
    #[cfg(test)]
    fn with_chain(provider: SharedCredentialsProvider, region: &str, clock: Clock) -> Self {
        let chain = Chain {
            provider: Some(provider),
            region: None,
        };
        Self {
            region: Some(region.to_string()),
            chain: Arc::new(OnceCell::new_with(Some(chain))),
            last: Default::default(),
            clock,
        }
    }

    /// A token for `user` at `host:port`: the last one while it is reused, else one signed now.
    pub(crate) async fn token(
        &self,
        host: &str,
        port: u16,
        user: &str,
    ) -> Result<String, TokenError> {
        let target = (host.to_string(), port, user.to_string());
        let now = (self.clock)();
        if let Some(token) = self.lock().as_ref() {
            if token.target == target && now < token.reuse_until {
                return Ok(token.text.clone());
            }
        }
        let chain = self
            .chain
            .get_or_init(|| async {
                let sdk = crate::aws::config(None, self.region.as_deref()).await;
                Chain {
                    provider: sdk.credentials_provider(),
                    region: sdk.region().map(|r| r.to_string()),
                }
            })
            .await;
        let region = self
            .region
            .clone()
            .or(chain.region.clone())
            .ok_or_else(|| {
                TokenError::NotConfigured(
                "IAM database authentication needs a region: set AWS_REGION (the database's region)"
                    .into(),
            )
            })?;
        let provider = chain.provider.as_ref().ok_or_else(|| {
            TokenError::NotConfigured(
                "IAM database authentication found no AWS credentials provider".into(),
            )
        })?;
        let credentials = provider.provide_credentials().await.map_err(|e| {
            let text = crate::aws::chain_text(&e);
            if not_configured(&e) {
                TokenError::NotConfigured(format!(
                    "IAM database authentication found no AWS credentials ({text}): set \
                     AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with a \
                     task/instance role"
                ))
            } else {
                TokenError::Unavailable(text)
            }
        })?;
        let now = (self.clock)();
        let text = auth_token(host, port, user, &region, &credentials, now)
            .map_err(TokenError::NotConfigured)?;
        let reuse_until = match credentials.expiry() {
            // Never signed with credentials about to lapse: a connection opened with such a
            // token a second later fails authentication, which stops the run.
            Some(expiry) => expiry
                .checked_sub(crate::aws::credentials::RENEW_BEFORE_EXPIRY)
                .unwrap_or(now)
                .min(now + TOKEN_REUSE),
            None => now + TOKEN_REUSE,
        };
        *self.lock() = Some(Token {
            target,
            text: text.clone(),
            reuse_until,
        });
        Ok(text)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Token>> {
        self.last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// botocore's `percent_encode`: everything but unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The RDS IAM token for `user` at `host:port` in `region`, signed with `credentials` at
/// `time`: `host:port/?Action=connect&DBUser=…&X-Amz-…&X-Amz-Signature=…`, query parameters in
/// botocore's order.
pub fn auth_token(
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<String, String> {
    let operation = format!("Action=connect&DBUser={}", encode(user));
    let url = format!("https://{host}:{port}/?{operation}");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("rds-db")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| format!("cannot sign the IAM token: {e}"))?
        .into();
    // botocore signs the host with its port, and the hash of an empty payload (the parameters
    // moved from the body to the query), not UNSIGNED-PAYLOAD.
    let authority = format!("{host}:{port}");
    let headers = [("host", authority.as_str())];
    let request = SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(b""))
        .map_err(|e| format!("cannot sign the IAM token: {e}"))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| format!("cannot sign the IAM token: {e}"))?
        .into_parts();
    let value = |name: &str| {
        instructions
            .params()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| encode(v))
    };
    let mut query = operation;
    for name in [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ] {
        if let Some(v) = value(name) {
            query.push_str(&format!("&{name}={v}"));
        }
    }
    Ok(format!("{host}:{port}/?{query}"))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod signing_tests {
    use super::*;

    #[test]
    fn the_token_is_a_presigned_connect_request() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_561_906);
        let token = auth_token(
            "db.example.com",
            5432,
            "login etl",
            "eu-west-1",
            &credentials,
            time,
        )
        .unwrap();
        assert!(token.starts_with("db.example.com:5432/?Action=connect&DBUser=login%20etl&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20251201%2Feu-west-1%2Frds-db%2Faws4_request&X-Amz-Date=20251201T040506Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature="), "{token}");
        assert!(!token.contains("secret"));
    }
}
