//! `/data/*`: the caller's own entries. Each handler checks its request in the contract's
//! order, which is that of its signature: the token ([`AuthUser`]) first, then the key, then
//! the body. The token's extractor checks the token alone, not its session; the key and the
//! body reach the handler as `Result`s, opened in that order by [`AuthUser::checked`], which
//! answers INVALID_TOKEN for a refused one when the token's session has ended. A valid
//! request's session is checked by the statement that serves it.

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::http::header::ETAG;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Map;

use super::extract::{IfMatch, IfNoneMatch, JsonObject};
use super::{Success, success_data, success_message};
use crate::AppState;
use crate::auth::AuthUser;
use crate::entity_tag::EntityTag;
use crate::error::ApiError;
use crate::store::ExpiryChange;
use crate::validation::{Key, Value};

/// Longest `ttl_seconds` accepted: one year.
const MAX_TTL_SECONDS: u64 = 31_536_000;

#[derive(Debug, Serialize)]
pub(super) struct Entry {
    #[serde(rename = "keyN")]
    key: String,
    #[serde(rename = "valueN")]
    value: String,
}

/// The body of `POST /data/store`: `keyN` (else INVALID_KEY), then `valueN` (else
/// INVALID_VALUE), then the optional `ttl_seconds` (else INVALID_TTL).
pub(super) struct NewEntry {
    key: Key,
    value: Value,
    ttl: Option<Duration>,
}

/// The body of `PUT /data/update/{key}`: `valueN` (else INVALID_VALUE), then the optional
/// `ttl_seconds` (else INVALID_TTL).
pub(super) struct EntryUpdate {
    value: Value,
    expiry: ExpiryChange,
}

/// The string field `name` of `body`, when it is one.
fn string_field(body: &mut Map<String, serde_json::Value>, name: &str) -> Option<String> {
    match body.remove(name) {
        Some(serde_json::Value::String(text)) => Some(text),
        _ => None,
    }
}

fn value_field(body: &mut Map<String, serde_json::Value>) -> Result<Value, ApiError> {
    string_field(body, "valueN")
        .and_then(Value::parse)
        .ok_or(ApiError::InvalidValue)
}

/// `ttl_seconds`: `None` when absent, `Some(None)` when null, `Some(Some(ttl))` when an
/// integer from 1 to [`MAX_TTL_SECONDS`]; anything else is INVALID_TTL.
fn ttl_field(
    body: &mut Map<String, serde_json::Value>,
) -> Result<Option<Option<Duration>>, ApiError> {
    match body.remove("ttl_seconds") {
        None => Ok(None),
        Some(serde_json::Value::Null) => Ok(Some(None)),
        // serde_json reads a number written with a fraction or an exponent as a float, which
        // as_u64 refuses.
        Some(serde_json::Value::Number(number)) => match number.as_u64() {
            Some(seconds @ 1..=MAX_TTL_SECONDS) => Ok(Some(Some(Duration::from_secs(seconds)))),
            _ => Err(ApiError::InvalidTtl),
        },
        Some(_) => Err(ApiError::InvalidTtl),
    }
}

impl<S: Send + Sync> FromRequest<S> for NewEntry {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let JsonObject(mut body) = JsonObject::from_request(request, state).await?;
        let key = string_field(&mut body, "keyN")
            .and_then(Key::parse)
            .ok_or(ApiError::InvalidKey)?;
        let value = value_field(&mut body)?;
        let ttl = ttl_field(&mut body)?.flatten();
        Ok(NewEntry { key, value, ttl })
    }
}

impl<S: Send + Sync> FromRequest<S> for EntryUpdate {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let JsonObject(mut body) = JsonObject::from_request(request, state).await?;
        let value = value_field(&mut body)?;
        let expiry = match ttl_field(&mut body)? {
            None => ExpiryChange::Keep,
            Some(None) => ExpiryChange::Clear,
            Some(Some(ttl)) => ExpiryChange::After(ttl),
        };
        Ok(EntryUpdate { value, expiry })
    }
}

/// An answer with the entry's `ETag`.
fn with_tag(tag: &EntityTag, answer: impl IntoResponse) -> Response {
    ([(ETAG, tag.header_value())], answer).into_response()
}

pub(super) async fn store(
    State(state): State<AppState>,
    user: AuthUser,
    entry: Result<NewEntry, ApiError>,
) -> Result<Response, ApiError> {
    let NewEntry { key, value, ttl } = user.checked(&state.store, entry).await?;
    let tag = state
        .store
        .insert_entry(user.session(), &key, &value, ttl, &state.quota)
        .await?;
    Ok(with_tag(&tag, success_message("Data stored successfully.")))
}

pub(super) async fn retrieve(
    State(state): State<AppState>,
    user: AuthUser,
    key: Result<Key, ApiError>,
    IfNoneMatch(if_none_match): IfNoneMatch,
) -> Result<Response, ApiError> {
    let key = user.checked(&state.store, key).await?;
    let (value, tag) = state
        .store
        .get_entry(user.session(), &key)
        .await?
        .ok_or(ApiError::KeyNotFound)?;
    let unchanged = if_none_match.is_some_and(|condition| condition.matches_weakly(&tag));
    if unchanged {
        return Ok(with_tag(&tag, StatusCode::NOT_MODIFIED));
    }
    let key = key.into_string();
    Ok(with_tag(&tag, success_data(None, Entry { key, value })))
}

pub(super) async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    key: Result<Key, ApiError>,
    IfMatch(if_match): IfMatch,
    update: Result<EntryUpdate, ApiError>,
) -> Result<Response, ApiError> {
    let key = user.checked(&state.store, key).await?;
    let EntryUpdate { value, expiry } = user.checked(&state.store, update).await?;
    let tag = state
        .store
        .update_entry(
            user.session(),
            &key,
            &value,
            expiry,
            if_match.as_ref(),
            &state.quota,
        )
        .await?;
    Ok(with_tag(
        &tag,
        success_message("Data updated successfully."),
    ))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    key: Result<Key, ApiError>,
    IfMatch(if_match): IfMatch,
) -> Result<Json<Success<()>>, ApiError> {
    let key = user.checked(&state.store, key).await?;
    state
        .store
        .delete_entry(user.session(), &key, if_match.as_ref())
        .await?;
    Ok(success_message("Data deleted successfully."))
}
