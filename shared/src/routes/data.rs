//! `/data/*`: the caller's own entries. Every handler takes [`AuthUser`] first, so the token
//! is checked before the key or the body.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Map, Value};

use super::extract::{JsonObject, KeyParam};
use super::{Success, success_data, success_message};
use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::validation::{is_valid_key, is_valid_value, optional_string};

#[derive(Debug, Serialize)]
pub(super) struct Entry {
    #[serde(rename = "keyN")]
    key: String,
    #[serde(rename = "valueN")]
    value: String,
}

fn checked_key(key: &str) -> Result<&str, ApiError> {
    is_valid_key(key).then_some(key).ok_or(ApiError::InvalidKey)
}

fn value_field(body: &Map<String, Value>) -> Result<&str, ApiError> {
    optional_string(body, "valueN")
        .ok()
        .flatten()
        .filter(|value| is_valid_value(value))
        .ok_or(ApiError::InvalidValue)
}

pub(super) async fn store(
    State(state): State<AppState>,
    user: AuthUser,
    JsonObject(body): JsonObject,
) -> Result<Json<Success<()>>, ApiError> {
    let key = optional_string(&body, "keyN")
        .ok()
        .flatten()
        .ok_or(ApiError::InvalidKey)
        .and_then(checked_key)?;
    let value = value_field(&body)?;
    state.store.insert_entry(user.user_id, key, value).await?;
    Ok(success_message("Data stored successfully."))
}

pub(super) async fn retrieve(
    State(state): State<AppState>,
    user: AuthUser,
    KeyParam(key): KeyParam,
) -> Result<Json<Success<Entry>>, ApiError> {
    checked_key(&key)?;
    let value = state
        .store
        .get_entry(user.user_id, &key)
        .await?
        .ok_or(ApiError::KeyNotFound)?;
    Ok(success_data(None, Entry { key, value }))
}

pub(super) async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    KeyParam(key): KeyParam,
    JsonObject(body): JsonObject,
) -> Result<Json<Success<()>>, ApiError> {
    checked_key(&key)?;
    let value = value_field(&body)?;
    if !state.store.update_entry(user.user_id, &key, value).await? {
        return Err(ApiError::KeyNotFound);
    }
    Ok(success_message("Data updated successfully."))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    KeyParam(key): KeyParam,
) -> Result<Json<Success<()>>, ApiError> {
    checked_key(&key)?;
    if !state.store.delete_entry(user.user_id, &key).await? {
        return Err(ApiError::KeyNotFound);
    }
    Ok(success_message("Data deleted successfully."))
}
