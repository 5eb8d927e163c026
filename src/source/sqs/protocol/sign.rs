//! SigV4 for the query-protocol requests the translator makes (the SDK signed the JSON one it
//! replaces).

use std::time::SystemTime;

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;

use super::{failure, Translator};

impl Translator {
    /// A form-encoded POST to `uri`, signed with SigV4 like any SQS request.
    pub(super) async fn signed_request(
        &self,
        uri: &str,
        body: String,
    ) -> Result<HttpRequest, ConnectorError> {
        let parsed: http::Uri = uri.parse().map_err(|_| failure("an invalid SQS URL"))?;
        let host = parsed
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut request = http::Request::builder()
            .method("POST")
            .uri(parsed)
            .header("host", host)
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body.clone())
            .map_err(|_| failure("an SQS request that cannot be built"))?;
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| ConnectorError::other(Box::new(e), None))?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sqs")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| ConnectorError::other(Box::new(e), None))?
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| ConnectorError::other(Box::new(e), None))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| ConnectorError::other(Box::new(e), None))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);
        HttpRequest::try_from(request.map(SdkBody::from))
            .map_err(|e| ConnectorError::other(Box::new(e), None))
    }
}
