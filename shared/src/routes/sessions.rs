//! Sessions: the tokens a login or a refresh hands out, `POST /auth/refresh`,
//! `POST /auth/logout` and `POST /auth/password`.

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use serde::Serialize;
use serde_json::{Map, Value};

use super::extract::{ClientAddress, JsonObject, body_bytes};
use super::{Success, success_data, success_message};
use crate::AppState;
use crate::auth::{AuthUser, PasswordError, RefreshToken, refresh_token_hash};
use crate::error::ApiError;
use crate::store::{RefreshOutcome, millis_after, now_millis};
use crate::validation::{is_blank, is_valid_password};

/// The answer of a login or a refresh: an access token and the session's next refresh token.
#[derive(Debug, Serialize)]
pub(super) struct SessionTokens {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: String,
    refresh_expires_in: u64,
}

/// Starts a session for `user_id` and gives its first tokens.
pub(super) async fn start_session(
    state: &AppState,
    user_id: i64,
) -> Result<SessionTokens, ApiError> {
    let refresh = RefreshToken::generate();
    let now = now_millis();
    let session = state
        .store
        .start_session(
            user_id,
            &refresh.hash,
            now,
            millis_after(now, state.sessions.refresh_lifetime),
        )
        .await?;
    session_tokens(state, session.user_id, session.id, refresh.token)
}

/// The answer carrying a new access token of the session and its refresh token.
fn session_tokens(
    state: &AppState,
    user_id: i64,
    session_id: i64,
    refresh_token: String,
) -> Result<SessionTokens, ApiError> {
    let access_token = state
        .tokens
        .issue(user_id, session_id)
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok(SessionTokens {
        access_token,
        token_type: "Bearer",
        expires_in: state.tokens.lifetime().as_secs(),
        refresh_token,
        refresh_expires_in: state.sessions.refresh_lifetime.as_secs(),
    })
}

/// A string field of `body` that must be present and not blank; `missing` otherwise (also for
/// another JSON type, as the contract's tables for these endpoints say).
fn required_string<'a>(
    body: &'a Map<String, Value>,
    name: &str,
    missing: fn() -> ApiError,
) -> Result<&'a str, ApiError> {
    match body.get(name) {
        Some(Value::String(text)) if !is_blank(Some(text)) => Ok(text),
        _ => Err(missing()),
    }
}

pub(super) async fn refresh(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Json<Success<SessionTokens>>, ApiError> {
    let presented = required_string(&body, "refresh_token", || ApiError::MissingRefreshToken)?;
    let next = RefreshToken::generate();
    let now = now_millis();
    let outcome = state
        .store
        .refresh_session(
            &refresh_token_hash(presented),
            &next.hash,
            now,
            millis_after(now, state.sessions.refresh_lifetime),
            state.sessions.reuse_grace,
        )
        .await?;
    match outcome {
        RefreshOutcome::Rotated(session) => Ok(success_data(
            Some("Access token refreshed successfully."),
            session_tokens(&state, session.user_id, session.id, next.token)?,
        )),
        RefreshOutcome::Refused { ended_session } => {
            if ended_session {
                tracing::warn!("a used refresh token came back: its session is ended");
            }
            Err(ApiError::InvalidRefreshToken)
        }
    }
}

/// The body of a logout: empty (or only whitespace), or a JSON object whose `everywhere`, when
/// present and not null, is a boolean.
pub(super) struct Logout {
    everywhere: bool,
}

impl<S: Send + Sync> FromRequest<S> for Logout {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Logout { everywhere: false });
        }
        let everywhere = match serde_json::from_slice(&bytes) {
            Ok(Value::Object(body)) => match body.get("everywhere") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(everywhere)) => *everywhere,
                Some(_) => return Err(ApiError::InvalidRequest),
            },
            _ => return Err(ApiError::InvalidRequest),
        };
        Ok(Logout { everywhere })
    }
}

pub(super) async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
    logout: Result<Logout, ApiError>,
) -> Result<Json<Success<()>>, ApiError> {
    let Logout { everywhere } = user.checked(&state.store, logout).await?;
    state
        .store
        .end_sessions(user.session(), everywhere, now_millis())
        .await?;
    Ok(success_message("Logged out successfully."))
}

/// The body of a password change: `current_password` and `new_password` (else MISSING_FIELDS),
/// then a new password that meets the rules of register (else INVALID_PASSWORD).
pub(super) struct PasswordChange {
    current: String,
    new: String,
}

impl<S: Send + Sync> FromRequest<S> for PasswordChange {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let JsonObject(body) = JsonObject::from_request(request, state).await?;
        let current = required_string(&body, "current_password", || ApiError::MissingPasswords)?;
        let new = required_string(&body, "new_password", || ApiError::MissingPasswords)?;
        if !is_valid_password(new) {
            return Err(ApiError::InvalidPassword);
        }
        Ok(PasswordChange {
            current: current.to_owned(),
            new: new.to_owned(),
        })
    }
}

pub(super) async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    address: ClientAddress,
    change: Result<PasswordChange, ApiError>,
) -> Result<Json<Success<()>>, ApiError> {
    let PasswordChange { current, new } = user.checked(&state.store, change).await?;
    let session = user.session();
    let (username, current_hash) = state.store.session_credentials(session).await?;
    // With the hashing queue full, nothing could be checked: 503 before anything is recorded.
    if !state.passwords.has_room() {
        return Err(PasswordError::Busy.into());
    }
    // A wrong current password counts as a failed login of the user's username.
    let attempt = state
        .throttle
        .begin(&state.store, &username, &address)
        .await?;
    // One verification whatever the case: a current password longer than register allows is
    // never hashed (it cannot be anyone's), but checked against the decoy, and is a failure
    // like a wrong one.
    let right = match state.passwords.check(&current, Some(&current_hash)).await {
        Ok(right) => right,
        Err(PasswordError::Busy) => {
            return Err(attempt.withdrawn(PasswordError::Busy.into()).await);
        }
        Err(error) => return Err(error.into()),
    };
    if !right {
        attempt.failed().await?;
        return Err(ApiError::InvalidCredentials);
    }
    attempt.succeeded().await?;
    // The queue may be full now: 503, and the password is unchanged.
    let new_hash = state.passwords.hash(&new).await?;
    state
        .store
        .change_password(session, &current_hash, &new_hash, now_millis())
        .await?;
    Ok(success_message("Password changed successfully."))
}
