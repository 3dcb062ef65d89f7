//! Extractors that turn the raw request into handler input, rejecting in the contract's terms.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::validation::Key;

/// A request body that is a JSON object. Its fields are read by the handler, which knows
/// which error each field's absence or wrong type gets.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection: BytesRejection| match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                    _ => ApiError::InvalidRequest,
                })?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(object)) => Ok(JsonObject(object)),
            _ => Err(ApiError::InvalidRequest),
        }
    }
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
