//! The API's error type: every failure a handler can answer with, rendered in one place as the
//! contract's error envelope.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// Seconds a client should wait before retrying when the database is unreachable.
const RETRY_AFTER_SECONDS: &str = "5";

/// An error answer of the API. Each variant is one row of the contract's error tables.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request body")]
    InvalidRequest,
    #[error("missing required fields: {0:?}")]
    MissingRegistrationFields(Vec<&'static str>),
    #[error("full_name too long")]
    FullNameTooLong,
    #[error("invalid username")]
    InvalidUsername,
    #[error("invalid email")]
    InvalidEmail,
    #[error("invalid password")]
    InvalidPassword,
    #[error("invalid age")]
    InvalidAge,
    #[error("gender required")]
    GenderRequired,
    #[error("username taken")]
    UsernameExists,
    #[error("email taken")]
    EmailExists,
    #[error("missing username or password")]
    MissingCredentials,
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The username or the caller's address has failed to log in too often: try again in
    /// `retry_after` seconds (at least 1).
    #[error("too many failed login attempts; retry after {retry_after} s")]
    TooManyAttempts { retry_after: u64 },
    #[error("invalid access token")]
    InvalidToken,
    #[error("missing refresh_token")]
    MissingRefreshToken,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("missing current_password or new_password")]
    MissingPasswords,
    #[error("invalid key")]
    InvalidKey,
    #[error("invalid value")]
    InvalidValue,
    #[error("key exists")]
    KeyExists,
    #[error("key not found")]
    KeyNotFound,
    #[error("invalid ttl_seconds")]
    InvalidTtl,
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("quota exceeded")]
    QuotaExceeded,
    #[error("invalid query parameters")]
    InvalidQuery,
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The service cannot take the request now, the database being fine (concurrent logins of
    /// one username that kept waiting for each other, or a full password-hashing queue): try
    /// again in `retry_after` seconds (at least 1).
    #[error("over capacity; retry after {retry_after} s")]
    Overloaded { retry_after: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: &'static str,
    code: &'static str,
    message: &'a str,
}

impl ApiError {
    /// The HTTP status, the contract's code and its message for this error.
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            InvalidRequest => (
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "Invalid request. The request body must be a JSON object with the documented fields.",
            ),
            // The message of this one lists the missing fields; see `message`.
            MissingRegistrationFields(_) => (StatusCode::BAD_REQUEST, "INVALID_REQUEST", ""),
            FullNameTooLong => (
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "Invalid request. full_name must be at most 255 characters.",
            ),
            InvalidUsername => (
                StatusCode::BAD_REQUEST,
                "INVALID_USERNAME",
                "The provided username is not valid. Use 3 to 64 letters, digits, '_', '.' or '-'.",
            ),
            InvalidEmail => (
                StatusCode::BAD_REQUEST,
                "INVALID_EMAIL",
                "The provided email address is not valid.",
            ),
            InvalidPassword => (
                StatusCode::BAD_REQUEST,
                "INVALID_PASSWORD",
                "The provided password does not meet the requirements. Password must be at least 8 characters long and contain a mix of uppercase and lowercase letters, numbers, and special characters.",
            ),
            InvalidAge => (
                StatusCode::BAD_REQUEST,
                "INVALID_AGE",
                "Invalid age value. Age must be a positive integer.",
            ),
            GenderRequired => (
                StatusCode::BAD_REQUEST,
                "GENDER_REQUIRED",
                "Gender field is required. Please specify the gender (e.g., male, female, non-binary).",
            ),
            UsernameExists => (
                StatusCode::CONFLICT,
                "USERNAME_EXISTS",
                "The provided username is already taken. Please choose a different username.",
            ),
            EmailExists => (
                StatusCode::CONFLICT,
                "EMAIL_EXISTS",
                "The provided email is already registered. Please use a different email address.",
            ),
            MissingCredentials => (
                StatusCode::BAD_REQUEST,
                "MISSING_FIELDS",
                "Missing fields. Please provide both username and password.",
            ),
            InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "INVALID_CREDENTIALS",
                "Invalid credentials. The provided username or password is incorrect.",
            ),
            MissingRefreshToken => (
                StatusCode::BAD_REQUEST,
                "MISSING_FIELDS",
                "Missing fields. Please provide a refresh_token.",
            ),
            InvalidRefreshToken => (
                StatusCode::UNAUTHORIZED,
                "INVALID_REFRESH_TOKEN",
                "Invalid refresh token provided.",
            ),
            MissingPasswords => (
                StatusCode::BAD_REQUEST,
                "MISSING_FIELDS",
                "Missing fields. Please provide both current_password and new_password.",
            ),
            TooManyAttempts { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_ATTEMPTS",
                "Too many failed login attempts. Please try again later.",
            ),
            InvalidToken => (
                StatusCode::UNAUTHORIZED,
                "INVALID_TOKEN",
                "Invalid access token provided.",
            ),
            InvalidKey => (
                StatusCode::BAD_REQUEST,
                "INVALID_KEY",
                "The provided key is not valid or missing.",
            ),
            InvalidValue => (
                StatusCode::BAD_REQUEST,
                "INVALID_VALUE",
                "The provided value is not valid or missing.",
            ),
            KeyExists => (
                StatusCode::CONFLICT,
                "KEY_EXISTS",
                "The provided key already exists in the database. To update an existing key, use the update API.",
            ),
            KeyNotFound => (
                StatusCode::NOT_FOUND,
                "KEY_NOT_FOUND",
                "The provided key does not exist in the database.",
            ),
            InvalidTtl => (
                StatusCode::BAD_REQUEST,
                "INVALID_TTL",
                "The provided ttl_seconds is not valid. Use an integer from 1 to 31536000.",
            ),
            PreconditionFailed => (
                StatusCode::PRECONDITION_FAILED,
                "PRECONDITION_FAILED",
                "The key has been changed since the given entity tag.",
            ),
            QuotaExceeded => (
                StatusCode::FORBIDDEN,
                "QUOTA_EXCEEDED",
                "The storage quota of this account is exhausted.",
            ),
            InvalidQuery => (
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY",
                "The query parameters are not valid.",
            ),
            NotFound => (
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The requested resource does not exist.",
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "The method is not allowed for this resource.",
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "The request body is too large.",
            ),
            Unavailable(_) | Overloaded { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "The service is temporarily unavailable. Please try again later.",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "An internal server error occurred. Please try again later.",
            ),
        }
    }

    /// The status code of this error.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The contract's code of this error, such as `INVALID_KEY`.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    /// The human sentence the contract gives for this error.
    pub fn message(&self) -> String {
        match self {
            ApiError::MissingRegistrationFields(fields) => format!(
                "Invalid request. Please provide all required fields: {}.",
                fields.join(", ")
            ),
            other => other.parts().2.to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Unavailable(error) => tracing::warn!(%error, "database unavailable"),
            ApiError::Overloaded { .. } => tracing::warn!(error = %self, "over capacity"),
            ApiError::Internal(error) => tracing::error!(%error, "internal error"),
            _ => {}
        }
        let message = self.message();
        let body = ErrorBody {
            status: "error",
            code: self.code(),
            message: &message,
        };
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        // INVALID_TOKEN answers, and only they, name the scheme the token is expected in.
        if matches!(self, ApiError::InvalidToken) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, ApiError::Unavailable(_)) {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        if let ApiError::TooManyAttempts { retry_after } | ApiError::Overloaded { retry_after } =
            &self
        {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from((*retry_after).max(1)),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UsernameTaken => ApiError::UsernameExists,
            StoreError::EmailTaken => ApiError::EmailExists,
            StoreError::KeyExists => ApiError::KeyExists,
            StoreError::KeyNotFound => ApiError::KeyNotFound,
            StoreError::PreconditionFailed => ApiError::PreconditionFailed,
            StoreError::QuotaExceeded => ApiError::QuotaExceeded,
            StoreError::SessionEnded => ApiError::InvalidToken,
            // Another change of the password went first: the current password given is no
            // longer the current one.
            StoreError::PasswordChanged => ApiError::InvalidCredentials,
            StoreError::Unavailable(error) => ApiError::Unavailable(error),
            StoreError::Database(error) => ApiError::Internal(error.to_string()),
        }
    }
}
