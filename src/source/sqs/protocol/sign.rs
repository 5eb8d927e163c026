//! SigV4 for the query-protocol requests the translator makes (the SDK signed the JSON one it
//! replaces).

use aws_credential_types::provider::ProvideCredentials;
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
            .body(())
            .map_err(|_| failure("an SQS request that cannot be built"))?;
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| ConnectorError::other(Box::new(e), None))?;
        let identity = credentials.into();
        crate::source::sqs::sigv4::sign_request(
            &mut request,
            body.as_bytes(),
            &identity,
            &self.region,
            std::time::SystemTime::now(),
        )
        .map_err(|e| failure(&e))?;
        HttpRequest::try_from(request.map(|()| SdkBody::from(body)))
            .map_err(|e| ConnectorError::other(Box::new(e), None))
    }
}
