//! SigV4 for the requests login-etl builds itself (the hot path's and the query translator's); the
//! SDK signs its own.

use std::time::SystemTime;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

/// Sign `request` (its headers so far, and `body`) for SQS in `region` at `time`: adds `X-Amz-Date`,
/// `Authorization` and, with temporary credentials, `X-Amz-Security-Token`. The error text names
/// what failed, never a key.
pub(super) fn sign_request<B>(
    request: &mut http::Request<B>,
    body: &[u8],
    identity: &Identity,
    region: &str,
    time: SystemTime,
) -> Result<(), String> {
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name("sqs")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("signing: {e}"))?
        .into();
    let uri = request.uri().to_string();
    let headers = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
    let signable = SignableRequest::new("POST", &uri, headers, SignableBody::Bytes(body))
        .map_err(|e| format!("signing: {e}"))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| format!("signing: {e}"))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}
