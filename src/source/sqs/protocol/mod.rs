//! Which wire protocol SQS is spoken in, and the translator for SQS servers that speak only the
//! older query protocol (LocalStack before 3.0, as in the take-home's docker-compose; moto before
//! 4.1.11).
//!
//! aws-sdk-sqs speaks only the JSON protocol. Rather than a second client, the translator is an
//! HTTP client plugged into the SDK's config: it rewrites each JSON request into the query form,
//! signs it again with SigV4, and turns the XML reply into the JSON reply the SDK expects. Every
//! call site, the SDK's retries, timeouts and typed errors stay as they are.
//!
//! In `auto` mode requests go out as JSON until a reply shows the signature of a query-only SQS
//! (see [`crate::aws::foreign_protocol`]); from then on that endpoint is spoken to in the query
//! protocol for the rest of the process, and the request that showed it is sent again translated.
//! Real AWS (no endpoint, or an `amazonaws.com` one) is never switched.

mod from_xml;
pub(crate) mod shape;
mod sign;
mod to_query;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use url::Url;

use from_xml::{Element, QueryError};

/// How to talk to SQS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqsProtocol {
    /// JSON first; switch to the query protocol when the endpoint speaks only that.
    #[default]
    Auto,
    /// Only the JSON protocol (LocalStack 3 and later, moto 4.1.11 and later, AWS).
    Json,
    /// Only the query protocol (LocalStack before 3.0, moto before 4.1.11; AWS accepts it too).
    Query,
}

/// The HTTP client for an SQS SDK client, when the default one is not enough: `None` for JSON
/// (and for `auto` against AWS itself).
pub(crate) fn http_client(
    protocol: SqsProtocol,
    endpoint: Option<&Url>,
    sdk: &aws_config::SdkConfig,
) -> Option<SharedHttpClient> {
    let is_aws = match endpoint {
        None => true,
        Some(url) => url
            .host_str()
            .is_some_and(|h| h.ends_with(".amazonaws.com") || h.ends_with(".amazonaws.com.cn")),
    };
    let auto = match protocol {
        SqsProtocol::Json => return None,
        SqsProtocol::Auto if is_aws => return None,
        SqsProtocol::Auto => true,
        SqsProtocol::Query => false,
    };
    let endpoint = endpoint.map_or_else(|| "AWS".to_string(), |u| u.to_string());
    let translator = Translator {
        speaks_query: !auto || query_only_endpoints().contains(&endpoint),
        endpoint,
        credentials: sdk.credentials_provider()?,
        region: sdk
            .region()
            .map_or_else(|| "us-east-1".into(), |r| r.to_string()),
    };
    Some(SharedHttpClient::new(QueryCompatibleClient {
        inner: default_https_client(),
        translator: Arc::new(Mutex::new(translator)),
        json_confirmed: Arc::default(),
    }))
}

pub(super) fn default_https_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build_https()
}

/// Endpoints found to speak only the query protocol in this process: clients made later (the
/// dead-letter queue, `create` then `connect`) start in query mode and the info line is said once.
fn query_only_endpoints() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    static ENDPOINTS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    ENDPOINTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Clone)]
struct Translator {
    speaks_query: bool,
    endpoint: String,
    credentials: SharedCredentialsProvider,
    region: String,
}

#[derive(Debug, Clone)]
struct QueryCompatibleClient {
    inner: SharedHttpClient,
    translator: Arc<Mutex<Translator>>,
    /// Set once the endpoint has answered a call in JSON as an SQS does: from then on requests
    /// pass straight through (nothing is cloned, read or translated on the hot path).
    json_confirmed: Arc<AtomicBool>,
}

impl HttpClient for QueryCompatibleClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(QueryCompatibleConnector {
            inner: self.inner.http_connector(settings, components),
            translator: self.translator.clone(),
            json_confirmed: self.json_confirmed.clone(),
        })
    }
}

#[derive(Debug, Clone)]
struct QueryCompatibleConnector {
    inner: SharedHttpConnector,
    translator: Arc<Mutex<Translator>>,
    json_confirmed: Arc<AtomicBool>,
}

impl HttpConnector for QueryCompatibleConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move { this.dispatch(request).await })
    }
}

impl QueryCompatibleConnector {
    fn translator(&self) -> Translator {
        self.translator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    async fn dispatch(&self, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        if self.json_confirmed.load(Ordering::Relaxed) {
            return self.inner.call(request).await;
        }
        let translator = self.translator();
        if translator.speaks_query {
            return self.call_in_query(&translator, request).await;
        }
        let action = action_of(&request).unwrap_or_default().to_string();
        let copy = request.try_clone();
        let mut response = self
            .inner
            .call(request)
            .await
            .map_err(|e| closed_without_reply(&translator, &action, e))?;
        let foreign = might_be_query_only(&response);
        // Only replies that may be foreign and the start-up calls (rare) are read here: the
        // receive/delete path passes through untouched.
        if !foreign && !shape::START_UP_ACTIONS.contains(&action.as_str()) {
            return Ok(response);
        }
        let body = buffer(&mut response).await?;
        if foreign {
            if let (Some(looks_like), Some(copy)) = (crate::aws::foreign_protocol(&body), copy) {
                self.switch_to_query(looks_like);
                return self.call_in_query(&translator, copy).await;
            }
        }
        let header = |name: &str| response.headers().get(name).map(str::to_string);
        shape::check_json(
            &action,
            response.status().as_u16(),
            header("content-type").as_deref(),
            header("x-amzn-query-error").is_some(),
            &body,
        )
        .map_err(|what| not_sqs(&translator, what))?;
        if response.status().is_success() {
            self.json_confirmed.store(true, Ordering::Relaxed);
        }
        Ok(response)
    }

    fn switch_to_query(&self, looks_like: &str) {
        let mut translator = self
            .translator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        translator.speaks_query = true;
        if query_only_endpoints().insert(translator.endpoint.clone()) {
            tracing::info!(
                endpoint = %translator.endpoint,
                "the SQS endpoint answered JSON with {looks_like}; using the query protocol for the rest of the run"
            );
        }
    }

    async fn call_in_query(
        &self,
        translator: &Translator,
        request: HttpRequest,
    ) -> Result<HttpResponse, ConnectorError> {
        let action = action_of(&request)
            .ok_or_else(|| failure("a request without an SQS X-Amz-Target header"))?
            .to_string();
        let input: serde_json::Value = match request.body().bytes() {
            Some(bytes) if !bytes.is_empty() => serde_json::from_slice(bytes)
                .map_err(|_| failure("an SQS request body that is not JSON"))?,
            _ => serde_json::Value::Object(Default::default()),
        };
        let body = to_query::encode(&to_query::form_params(&action, &input));
        let signed = translator.signed_request(request.uri(), body).await?;
        let mut response = self
            .inner
            .call(signed)
            .await
            .map_err(|e| closed_without_reply(translator, &action, e))?;
        let reply = buffer(&mut response).await?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) && !query_reply_to(&action, &reply) {
            let content_type = response.headers().get("content-type");
            return Err(not_sqs(
                translator,
                shape::describe(status, content_type, &reply),
            ));
        }
        json_response(&action, status, &reply)
    }
}

/// The SQS action of a JSON-protocol request (`X-Amz-Target: AmazonSQS.<Action>`).
fn action_of(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get("x-amz-target")
        .and_then(|target| target.strip_prefix("AmazonSQS."))
}

/// Whether a successful query-protocol reply is the one `action` gets: `<ActionResponse>`.
fn query_reply_to(action: &str, reply: &[u8]) -> bool {
    std::str::from_utf8(reply)
        .ok()
        .and_then(crate::aws::xml_root)
        .is_some_and(|root| root == format!("{action}Response"))
}

/// A reply no SQS gives: the run stops with one line (never retried: nothing will change).
fn not_sqs(translator: &Translator, what: String) -> ConnectorError {
    let error = shape::NotSqs {
        endpoint: translator.endpoint.clone(),
        what,
    };
    ConnectorError::other(Box::new(error), None)
}

/// A connection closed without a reply to a start-up call is a port that is not an SQS (the
/// SDK still retries it as the I/O error it is); anything else is passed on as it was.
fn closed_without_reply(
    translator: &Translator,
    action: &str,
    err: ConnectorError,
) -> ConnectorError {
    let closed = std::iter::successors(Some(&err as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .any(|e| {
        e.to_string()
            .contains("connection closed before message completed")
    });
    if closed && shape::START_UP_ACTIONS.contains(&action) {
        let error = shape::NotSqs {
            endpoint: translator.endpoint.clone(),
            what: "it closed the connection without answering".into(),
        };
        return ConnectorError::io(Box::new(error));
    }
    err
}

/// A JSON reply is `application/x-amz-json-1.0`; anything else, or an HTTP 500, may be a
/// query-only server, and its body is read to tell.
fn might_be_query_only(response: &HttpResponse) -> bool {
    let json = response
        .headers()
        .get("content-type")
        .is_some_and(|t| t.contains("json"));
    response.status().as_u16() == 500 || !json
}

/// Read the whole body, leaving an in-memory copy in the response.
async fn buffer(response: &mut HttpResponse) -> Result<bytes::Bytes, ConnectorError> {
    let body = response.take_body();
    let bytes = ByteStream::new(body)
        .collect()
        .await
        .map_err(|e| ConnectorError::io(Box::new(e)))?
        .into_bytes();
    *response.body_mut() = SdkBody::from(bytes.clone());
    Ok(bytes)
}

/// The JSON-protocol response the SDK expects for an XML `reply` to `action`.
fn json_response(action: &str, status: u16, reply: &[u8]) -> Result<HttpResponse, ConnectorError> {
    let unreadable = || {
        failure(&format!(
            "a query-protocol reply to {action} that is not SQS XML (HTTP {status})"
        ))
    };
    let text = std::str::from_utf8(reply).map_err(|_| unreadable())?;
    let root = Element::parse(text).map_err(|_| unreadable())?;
    let (body, query_error) = if (200..300).contains(&status) {
        (from_xml::output_json(action, &root), None)
    } else {
        let error = QueryError::of(&root).ok_or_else(unreadable)?;
        let body = serde_json::json!({ "__type": error.code, "message": error.message });
        (body, Some(format!("{};{}", error.code, error.kind)))
    };
    let status = http::StatusCode::from_u16(status).map_err(|_| unreadable())?;
    let mut response = http::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0");
    if let Some(id) = from_xml::request_id(&root) {
        response = response.header("x-amzn-requestid", id);
    }
    if let Some(code_and_type) = query_error {
        response = response.header("x-amzn-query-error", code_and_type);
    }
    let response = response
        .body(SdkBody::from(body.to_string()))
        .map_err(|_| unreadable())?;
    HttpResponse::try_from(response).map_err(|e| ConnectorError::other(Box::new(e), None))
}

/// A failure of the translation itself. Its text never quotes a request or reply.
fn failure(what: &str) -> ConnectorError {
    ConnectorError::other(
        format!("query-protocol translation failed: {what}").into(),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_replies_keep_the_query_code_for_the_sdk() {
        let xml = b"<ErrorResponse><Error><Type>Sender</Type>\
            <Code>AWS.SimpleQueueService.NonExistentQueue</Code><Message>gone</Message></Error>\
            <RequestId>r</RequestId></ErrorResponse>";
        let response = json_response("GetQueueUrl", 400, xml).unwrap();
        assert_eq!(response.status().as_u16(), 400);
        assert_eq!(
            response.headers().get("x-amzn-query-error"),
            Some("AWS.SimpleQueueService.NonExistentQueue;Sender")
        );
    }

    #[test]
    fn unreadable_replies_fail_without_quoting_the_body() {
        let err = json_response("ReceiveMessage", 200, b"<html>10.9.8.7").unwrap_err();
        let text = format!("{err:?} {err}");
        assert!(!text.contains("10.9.8.7"), "{text}");
    }

    #[test]
    fn aws_itself_is_never_switched() {
        let sdk = aws_config::SdkConfig::builder().build();
        let aws: Url = "https://sqs.eu-west-1.amazonaws.com".parse().unwrap();
        assert!(http_client(SqsProtocol::Auto, None, &sdk).is_none());
        assert!(http_client(SqsProtocol::Auto, Some(&aws), &sdk).is_none());
        assert!(http_client(SqsProtocol::Json, None, &sdk).is_none());
    }
}
