//! `POST /auth/register` and `POST /auth/token` (which starts a session).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Map, Value};

use super::extract::{ClientAddress, JsonObject};
use super::sessions::{SessionTokens, start_session};
use super::{Success, success_data};
use crate::AppState;
use crate::auth::PasswordError;
use crate::error::ApiError;
use crate::store::NewUser;
use crate::validation::{
    MAX_FULL_NAME_CHARS, MAX_GENDER_CHARS, WrongType, is_blank, is_valid_password,
    is_valid_username, normalize_email, optional_string, parse_age,
};

/// The fields of a registration that must be present, in the order the contract lists them.
const REQUIRED_FIELDS: [&str; 4] = ["username", "email", "password", "full_name"];

#[derive(Debug, Serialize)]
pub(super) struct RegisteredUser {
    user_id: String,
    username: String,
    email: String,
    full_name: String,
    age: Option<i64>,
    gender: String,
}

/// A string field whose wrong JSON type is a malformed request.
fn string_field<'a>(body: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ApiError> {
    optional_string(body, name).map_err(|WrongType| ApiError::InvalidRequest)
}

pub(super) async fn register(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Json<Success<RegisteredUser>>, ApiError> {
    let user = validate_registration(&body)?;
    // A full hashing queue answers 503 (PasswordError::Busy).
    let password_hash = state.passwords.hash(user.password).await?;
    let new_user = NewUser {
        username: user.username.to_owned(),
        email: user.email,
        password_hash,
        full_name: user.full_name.to_owned(),
        age: user.age,
        gender: user.gender.to_owned(),
    };
    let user_id = state.store.create_user(&new_user).await?;
    Ok(success_data(
        Some("User successfully registered!"),
        RegisteredUser {
            user_id: user_id.to_string(),
            username: new_user.username,
            email: new_user.email,
            full_name: new_user.full_name,
            age: new_user.age,
            gender: new_user.gender,
        },
    ))
}

/// A registration that passed every check of the contract, in the contract's order.
struct Registration<'a> {
    username: &'a str,
    email: String,
    password: &'a str,
    full_name: &'a str,
    age: Option<i64>,
    gender: &'a str,
}

fn validate_registration(body: &Map<String, Value>) -> Result<Registration<'_>, ApiError> {
    let username = string_field(body, "username")?;
    let email = string_field(body, "email")?;
    let password = string_field(body, "password")?;
    let full_name = string_field(body, "full_name")?;
    let gender = string_field(body, "gender")?;

    let missing: Vec<&'static str> = REQUIRED_FIELDS
        .into_iter()
        .zip([username, email, password, full_name])
        .filter(|(_, value)| is_blank(*value))
        .map(|(name, _)| name)
        .collect();
    let (Some(username), Some(email), Some(password), Some(full_name)) =
        (username, email, password, full_name)
    else {
        return Err(ApiError::MissingRegistrationFields(missing));
    };
    if !missing.is_empty() {
        return Err(ApiError::MissingRegistrationFields(missing));
    }

    if !is_valid_username(username) {
        return Err(ApiError::InvalidUsername);
    }
    let email = normalize_email(email).ok_or(ApiError::InvalidEmail)?;
    if !is_valid_password(password) {
        return Err(ApiError::InvalidPassword);
    }
    if full_name.chars().count() > MAX_FULL_NAME_CHARS {
        return Err(ApiError::FullNameTooLong);
    }
    let age = match body.get("age") {
        None | Some(Value::Null) => None,
        Some(value) => Some(parse_age(value).ok_or(ApiError::InvalidAge)?),
    };
    let gender = gender
        .filter(|gender| !is_blank(Some(gender)) && gender.chars().count() <= MAX_GENDER_CHARS)
        .ok_or(ApiError::GenderRequired)?;

    Ok(Registration {
        username,
        email,
        password,
        full_name,
        age,
        gender,
    })
}

pub(super) async fn token(
    State(state): State<AppState>,
    address: ClientAddress,
    JsonObject(body): JsonObject,
) -> Result<Json<Success<SessionTokens>>, ApiError> {
    let username = string_field(&body, "username")?;
    let password = string_field(&body, "password")?;
    let (Some(username), Some(password)) = (username, password) else {
        return Err(ApiError::MissingCredentials);
    };
    if is_blank(Some(username)) || is_blank(Some(password)) {
        return Err(ApiError::MissingCredentials);
    }
    // With the hashing queue full, the attempt could not be checked: 503 before anything is
    // recorded. (The queue may still fill before this attempt's turn: see below.)
    if !state.passwords.has_room() {
        return Err(PasswordError::Busy.into());
    }
    // Recorded from here on, in flight until the password is checked: a wrong one is a
    // failure, a right one clears the username's failures. A throttled attempt answers 429
    // before any hashing.
    let attempt = state
        .throttle
        .begin(&state.store, username, &address)
        .await?;

    // A name that breaks the username rules names no one: no need to ask the database (whose
    // ASCII column could not even compare it).
    let credentials = if is_valid_username(username) {
        state.store.find_credentials(username).await?
    } else {
        None
    };
    // One verification whatever the case: an unknown user, or a password longer than register
    // allows (which is never hashed), is checked against the decoy, and is a failure like a
    // wrong password, with the same answer.
    let stored = credentials.as_ref().map(|(_, hash)| hash.as_str());
    let right = match state.passwords.check(password, stored).await {
        Ok(right) => right,
        // Not checked, so neither a failure nor a success: the attempt is forgotten.
        Err(PasswordError::Busy) => {
            return Err(attempt.withdrawn(PasswordError::Busy.into()).await);
        }
        Err(error) => return Err(error.into()),
    };
    let Some((user_id, _)) = credentials.filter(|_| right) else {
        attempt.failed().await?;
        return Err(ApiError::InvalidCredentials);
    };
    attempt.succeeded().await?;

    Ok(success_data(
        Some("Access token generated successfully."),
        start_session(&state, user_id).await?,
    ))
}
