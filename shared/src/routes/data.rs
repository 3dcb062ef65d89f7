//! `/data/*`: the caller's own entries. Each handler's arguments are checked in the order of
//! its signature, which is the contract's: the token ([`AuthUser`]) first, then the key, then
//! the body.

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use serde::Serialize;
use serde_json::Map;

use super::extract::JsonObject;
use super::{Success, success_data, success_message};
use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::validation::{Key, Value};

#[derive(Debug, Serialize)]
pub(super) struct Entry {
    #[serde(rename = "keyN")]
    key: String,
    #[serde(rename = "valueN")]
    value: String,
}

/// The body of `POST /data/store`: `keyN` (else INVALID_KEY), then `valueN` (else
/// INVALID_VALUE).
pub(super) struct NewEntry {
    key: Key,
    value: Value,
}

/// The body of `PUT /data/update/{key}`: `valueN` (else INVALID_VALUE).
pub(super) struct EntryUpdate {
    value: Value,
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

impl<S: Send + Sync> FromRequest<S> for NewEntry {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let JsonObject(mut body) = JsonObject::from_request(request, state).await?;
        let key = string_field(&mut body, "keyN")
            .and_then(Key::parse)
            .ok_or(ApiError::InvalidKey)?;
        let value = value_field(&mut body)?;
        Ok(NewEntry { key, value })
    }
}

impl<S: Send + Sync> FromRequest<S> for EntryUpdate {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let JsonObject(mut body) = JsonObject::from_request(request, state).await?;
        Ok(EntryUpdate {
            value: value_field(&mut body)?,
        })
    }
}

pub(super) async fn store(
    State(state): State<AppState>,
    user: AuthUser,
    NewEntry { key, value }: NewEntry,
) -> Result<Json<Success<()>>, ApiError> {
    state.store.insert_entry(user.user_id, &key, &value).await?;
    Ok(success_message("Data stored successfully."))
}

pub(super) async fn retrieve(
    State(state): State<AppState>,
    user: AuthUser,
    key: Key,
) -> Result<Json<Success<Entry>>, ApiError> {
    let value = state
        .store
        .get_entry(user.user_id, &key)
        .await?
        .ok_or(ApiError::KeyNotFound)?;
    let key = key.into_string();
    Ok(success_data(None, Entry { key, value }))
}

pub(super) async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    key: Key,
    EntryUpdate { value }: EntryUpdate,
) -> Result<Json<Success<()>>, ApiError> {
    if !state.store.update_entry(user.user_id, &key, &value).await? {
        return Err(ApiError::KeyNotFound);
    }
    Ok(success_message("Data updated successfully."))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    key: Key,
) -> Result<Json<Success<()>>, ApiError> {
    if !state.store.delete_entry(user.user_id, &key).await? {
        return Err(ApiError::KeyNotFound);
    }
    Ok(success_message("Data deleted successfully."))
}
