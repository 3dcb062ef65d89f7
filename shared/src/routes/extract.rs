//! Extractors that turn the raw request into handler input, rejecting in the contract's terms.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::header::{IF_MATCH, IF_NONE_MATCH};
use axum::http::request::Parts;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use serde_json::{Map, Value};

use crate::entity_tag::TagCondition;
use crate::error::ApiError;
use crate::validation::Key;

/// A request body that is a JSON object. Its fields are read by the handler, which knows
/// which error each field's absence or wrong type gets.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(request, state).await?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(object)) => Ok(JsonObject(object)),
            _ => Err(ApiError::InvalidRequest),
        }
    }
}

/// The whole body of `request`: over the body limit, [`ApiError::PayloadTooLarge`]; unreadable,
/// [`ApiError::InvalidRequest`].
pub(super) async fn body_bytes<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection: BytesRejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            _ => ApiError::InvalidRequest,
        })
}

/// The key named by the last path segment, percent-decoded: a segment that does not decode
/// to UTF-8, or is not a valid key, is [`ApiError::InvalidKey`].
impl<S: Send + Sync> FromRequestParts<S> for Key {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(key) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::InvalidKey)?;
        Key::parse(key).ok_or(ApiError::InvalidKey)
    }
}

/// The `If-Match` condition of a request, if it has one: read from the headers in place
/// (the `HeaderMap` extractor would copy all of them, the token included).
pub struct IfMatch(pub Option<TagCondition>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(IfMatch(TagCondition::from_headers(
            parts.headers.get_all(IF_MATCH),
        )))
    }
}

/// The `If-None-Match` condition of a request, if it has one, read as [`IfMatch`]'s is.
pub struct IfNoneMatch(pub Option<TagCondition>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(IfNoneMatch(TagCondition::from_headers(
            parts.headers.get_all(IF_NONE_MATCH),
        )))
    }
}

/// The address the caller's request came from, as text: on Lambda the source IP API Gateway
/// saw (its `requestContext`), locally the socket's peer address. Headers such as
/// `X-Forwarded-For` are never read: any client can write them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(String);

impl ClientAddress {
    /// What stands for the address when none is known (a request that came neither through API
    /// Gateway nor through a listener that records peers): such requests are then throttled
    /// per username, and together per this address.
    pub const UNKNOWN: &str = "unknown";

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address of a request with these parts.
    pub fn of(parts: &Parts) -> ClientAddress {
        let from_gateway = match parts.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
            Some(RequestContext::ApiGatewayV1(context)) => context.identity.source_ip.clone(),
            _ => None,
        };
        let address = from_gateway
            .filter(|address| !address.trim().is_empty())
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    // An IPv4 peer of a dual-stack socket counts as its IPv4 address.
                    .map(|ConnectInfo(peer)| peer.ip().to_canonical().to_string())
            })
            .unwrap_or_else(|| ClientAddress::UNKNOWN.to_owned());
        ClientAddress(address)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(ClientAddress::of(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use lambda_http::request::LambdaRequest;

    fn parts_of(request: Request<()>) -> Parts {
        request.into_parts().0
    }

    #[test]
    fn locally_the_peer_address_counts_and_forwarded_headers_do_not() {
        let mut request = Request::builder()
            .header("x-forwarded-for", "198.51.100.7")
            .body(())
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
        assert_eq!(ClientAddress::of(&parts_of(request)).as_str(), "127.0.0.1");

        let mut mapped = Request::new(());
        let peer: SocketAddr = "[::ffff:192.0.2.1]:80".parse().unwrap();
        mapped.extensions_mut().insert(ConnectInfo(peer));
        assert_eq!(ClientAddress::of(&parts_of(mapped)).as_str(), "192.0.2.1");
    }

    #[test]
    fn without_any_address_a_placeholder_counts() {
        let request = Request::builder()
            .header("x-forwarded-for", "198.51.100.7")
            .body(())
            .unwrap();
        assert_eq!(
            ClientAddress::of(&parts_of(request)).as_str(),
            ClientAddress::UNKNOWN
        );
    }

    /// The source IP of the repository's sample events, through lambda_http's own conversion,
    /// and not their `X-Forwarded-For` (203.0.113.10).
    #[test]
    fn on_lambda_the_gateway_s_source_ip_counts() {
        for event in ["http-api-v2/token.json", "rest-api-v1/token.json"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/events")
                .join(event);
            let text = std::fs::read_to_string(&path).unwrap().replace(
                r#""sourceIp": "203.0.113.10""#,
                r#""sourceIp": "192.0.2.99""#,
            );
            let request: LambdaRequest = serde_json::from_str(&text).unwrap();
            let request: lambda_http::Request = request.into();
            let (parts, _) = request.into_parts();
            assert_eq!(ClientAddress::of(&parts).as_str(), "192.0.2.99", "{event}");
        }
    }
}
