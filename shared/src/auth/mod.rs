//! Who is calling: passwords, access tokens, login throttling, and the extractor that checks a
//! bearer token.

mod password;
mod refresh;
mod throttle;
mod token;

pub use password::{
    BUSY_RETRY_AFTER_SECS, DEFAULT_QUEUE_PER_WORKER, HeldWorkers, PasswordError, PasswordStats,
    Passwords,
};
pub use refresh::{RefreshToken, refresh_token_hash};
pub use throttle::{LoginGuard, LoginThrottle};
pub use token::{Claims, TokenError, Tokens, key_id};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::AppState;
use crate::error::ApiError;
use crate::store::{Session, Store};

/// The user an `Authorization: Bearer <token>` header proves the caller to be, and the
/// session the token belongs to. The extractor checks the token alone (signature, expiry, key
/// id); whether its session still lives is checked by the statement that serves the request,
/// or, when the request's own input is refused before any, by [`AuthUser::checked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthUser {
    pub user_id: i64,
    pub session_id: i64,
}

impl AuthUser {
    /// The session the token names.
    pub fn session(&self) -> Session {
        Session {
            user_id: self.user_id,
            id: self.session_id,
        }
    }

    /// The handler's `input` (a path key, a body, a query) as its extractor or parser left it:
    /// a valid one unchanged; for a refused one, its error if the session lives, else
    /// INVALID_TOKEN, since the contract checks the token, its session included, before the
    /// input. Only a refused input costs this read of the session: a valid one goes on to the
    /// statement that serves the request, which checks the session itself.
    pub async fn checked<T>(
        &self,
        store: &Store,
        input: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        match input {
            Ok(input) => Ok(input),
            Err(refusal) if store.session_lives(self.session()).await? => Err(refusal),
            Err(_) => Err(ApiError::InvalidToken),
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or(ApiError::InvalidToken)?;
        let token = bearer_token(header).ok_or(ApiError::InvalidToken)?;
        let claims = state
            .tokens
            .verify(token)
            .map_err(|_| ApiError::InvalidToken)?;
        let user_id = claims.sub.parse().map_err(|_| ApiError::InvalidToken)?;
        let session_id = claims.sid.parse().map_err(|_| ApiError::InvalidToken)?;
        Ok(AuthUser {
            user_id,
            session_id,
        })
    }
}

/// The token of a `Bearer <token>` header value; the scheme's case does not matter.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
    }

    #[test]
    fn other_shapes_are_refused() {
        for header in [
            "abc",
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "Bearerabc",
        ] {
            assert_eq!(bearer_token(header), None, "{header}");
        }
    }
}
