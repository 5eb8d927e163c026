//! The SDK's own HTTP connector, lent to the hot path.
//!
//! The HTTP client handed to the SQS SDK client is wrapped: its first request records the
//! connector the SDK was given (connection pool, TLS, proxy, connect timeout, and the query
//! protocol translator where one is in use) and the URI the SDK resolved for the endpoint
//! (`--sqs-endpoint`, `AWS_ENDPOINT_URL_SQS`, FIPS or dual-stack). The hot path then sends its
//! requests exactly where and how the SDK would, without the SDK's orchestrator.

use std::sync::{Arc, OnceLock};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// Where and how SQS requests go, as the SDK's first request showed.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) connector: SharedHttpConnector,
    pub(crate) uri: http::Uri,
}

/// The route, once a first SDK request has been made (shared by clones of the source).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tapped(Arc<OnceLock<Route>>);

impl Tapped {
    pub(crate) fn route(&self) -> Option<&Route> {
        self.0.get()
    }

    /// `inner`, recording its connector and the endpoint URI into `self` at the first request.
    pub(crate) fn client(&self, inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(TapClient {
            inner,
            tapped: self.clone(),
        })
    }
}

#[derive(Debug)]
struct TapClient {
    inner: SharedHttpClient,
    tapped: Tapped,
}

impl HttpClient for TapClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let inner = self.inner.http_connector(settings, components);
        if self.tapped.route().is_some() {
            return inner; // recorded: out of the path from now on
        }
        SharedHttpConnector::new(TapConnector {
            inner,
            tapped: self.tapped.clone(),
        })
    }
}

#[derive(Debug)]
struct TapConnector {
    inner: SharedHttpConnector,
    tapped: Tapped,
}

impl HttpConnector for TapConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        if let Ok(uri) = request.uri().parse::<http::Uri>() {
            let _ = self.tapped.0.set(Route {
                connector: self.inner.clone(),
                uri,
            });
        }
        self.inner.call(request)
    }
}
