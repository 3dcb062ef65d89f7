//! Serving one endpoint as an AWS Lambda function behind API Gateway.
//!
//! API Gateway hands the function a path that axum cannot route as it is: a REST API (payload
//! v1) puts the stage in front of it, and an HTTP API (payload v2) percent-decodes it, so that
//! the key `a/b c`, sent as `a%2Fb%20c`, arrives as two segments. Both events also say which
//! route matched, so [`gateway_path`] rebuilds the path from that route and its `key`
//! parameter before the router sees it.
//!
//! Each request is served in a span, [`api_gateway_span`], that names API Gateway's request id,
//! inside lambda_runtime's span of the invocation: every line logged while serving it carries
//! both ids (see [`crate::telemetry`]). Requests are traced as the local adapter's are
//! (`RUST_LOG=tower_http=debug`).

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::Router;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tower::util::MapRequest;
use tower::{Service, ServiceExt};
use tower_http::trace::TraceLayer;
use tracing::Instrument;
use tracing::instrument::Instrumented;

use crate::AppState;
use crate::config::{Config, Runtime};
use crate::routes::{Endpoint, endpoint_router};

/// The target of [`api_gateway_span`], which [`crate::telemetry`] keeps on at every level.
pub const API_GATEWAY_SPAN_TARGET: &str = "kv_shared::lambda::api_gateway";

/// The service a Lambda function hands to `lambda_http::run`: the endpoint's router, with
/// request tracing, behind the path rewriting of [`gateway_path`], each request in its
/// [`api_gateway_span`].
#[derive(Clone)]
pub struct FunctionService {
    router: MapRequest<Router, fn(Request) -> Request>,
}

/// The function that serves `endpoint` with `state`.
pub fn function_service(endpoint: Endpoint, state: AppState) -> FunctionService {
    FunctionService {
        router: endpoint_router(endpoint, state)
            .layer(TraceLayer::new_for_http())
            .map_request(route_by_gateway_path as fn(Request) -> Request),
    }
}

impl Service<Request> for FunctionService {
    type Response = Response;
    type Error = Infallible;
    type Future = Instrumented<RouteFuture<Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.router.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let span = api_gateway_span(api_request_id(&request));
        // Entered while the router is called too, so that the spans it opens are its children.
        let future = span.in_scope(|| self.router.call(request));
        future.instrument(span)
    }
}

/// The span `api_gateway` of a request, with API Gateway's id of it (`api_request_id`, the
/// `$context.requestId` of its access log) when the event has one.
pub fn api_gateway_span(api_request_id: Option<&str>) -> tracing::Span {
    let span = tracing::info_span!(
        target: API_GATEWAY_SPAN_TARGET,
        "api_gateway",
        api_request_id = tracing::field::Empty
    );
    if let Some(id) = api_request_id {
        span.record("api_request_id", id);
    }
    span
}

/// API Gateway's id of the request, from the event's request context (either payload).
fn api_request_id(request: &Request) -> Option<&str> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(context) => context.request_id.as_deref(),
        RequestContext::ApiGatewayV2(context) => context.request_id.as_deref(),
        _ => None,
    }
}

/// Runs `endpoint` as a Lambda function: configuration and state are built once per cold
/// start, then every invocation is served by the same router and connection pool. Returns an
/// error, so the function fails to initialise, when the configuration is incomplete.
pub async fn run(endpoint: Endpoint) -> Result<(), lambda_http::Error> {
    crate::telemetry::init(Runtime::Lambda);
    let config = Config::load(Runtime::Lambda).await.inspect_err(|error| {
        tracing::error!(%error, "refusing to start: the configuration is incomplete");
    })?;
    let state = AppState::new(&config);
    if state.store.backend() == crate::store::Backend::Sqlite {
        // No deployment step creates an embedded database's schema: do it here.
        state.store.migrate().await?;
    }
    lambda_http::run(function_service(endpoint, state)).await
}

fn route_by_gateway_path(mut request: Request) -> Request {
    if let Some(path) = gateway_path(&request) {
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(path_and_query) = path_and_query.parse() {
            parts.path_and_query = Some(path_and_query);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// The path of the route API Gateway matched, with the key as one percent-encoded segment:
/// `None` when the event names no route (then the path stays as lambda_http built it).
pub fn gateway_path(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(context) => {
            // `/data/retrieve/{key}`; the event's `path` keeps the client's encoding and has
            // no stage, and the key is its last segment.
            let route = context.resource_path.as_deref()?;
            let raw_path = request.raw_http_path();
            fill_route(route, || raw_path.rsplit('/').next().map(str::to_owned))
        }
        RequestContext::ApiGatewayV2(context) => {
            // `GET /data/retrieve/{key+}`; the path arrives decoded, and so does the key.
            let (_method, route) = context.route_key.as_deref()?.split_once(' ')?;
            let key = request
                .path_parameters_ref()
                .and_then(|parameters| parameters.first("key"));
            fill_route(route, || {
                key.map(|key| utf8_percent_encode(key, NON_ALPHANUMERIC).to_string())
            })
        }
        _ => None,
    }
}

/// `route` with its `{key}` or `{key+}` placeholder replaced by the encoded key.
fn fill_route(route: &str, encoded_key: impl FnOnce() -> Option<String>) -> Option<String> {
    match route.split_once('{') {
        None => Some(route.to_owned()),
        Some((prefix, _placeholder)) => Some(format!("{prefix}{}", encoded_key()?)),
    }
}
