//! RDS IAM database authentication: the password is a token — a SigV4-presigned
//! `rds-db:connect` request for the host, port and user, valid 15 minutes — made from the same
//! AWS credential chain as SQS, afresh for every new connection. The same bytes as botocore's
//! `generate_db_auth_token` (tested against it), so what works from Python works here.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use tokio::sync::OnceCell;

/// How long a token is accepted for a new connection (RDS's fixed limit).
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// Where tokens come from: the AWS credential chain and region, read once, on first use.
#[derive(Debug, Clone, Default)]
pub(crate) struct IamAuth {
    region: Option<String>,
    chain: std::sync::Arc<OnceCell<(Option<SharedCredentialsProvider>, Option<String>)>>,
}

impl IamAuth {
    /// Tokens for `region` (`None`: the AWS chain's region, e.g. `AWS_REGION`).
    pub(crate) fn new(region: Option<String>) -> Self {
        Self {
            region,
            chain: Default::default(),
        }
    }

    /// A token for `user` at `host:port`, signed now.
    pub(crate) async fn token(&self, host: &str, port: u16, user: &str) -> Result<String, String> {
        let (provider, chain_region) = self
            .chain
            .get_or_init(|| async {
                let sdk = crate::aws::config(None, self.region.as_deref()).await;
                (
                    sdk.credentials_provider(),
                    sdk.region().map(|r| r.to_string()),
                )
            })
            .await;
        let region = self.region.clone().or(chain_region.clone()).ok_or(
            "IAM database authentication needs a region: set AWS_REGION (the database's region)",
        )?;
        let provider = provider
            .as_ref()
            .ok_or("IAM database authentication found no AWS credentials provider")?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| format!("IAM database authentication: no AWS credentials ({e})"))?;
        auth_token(host, port, user, &region, &credentials, SystemTime::now())
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
mod tests {
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
