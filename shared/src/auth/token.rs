//! HS256 access tokens: issued by `/auth/token`, checked by every `/data` endpoint.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id, as a string.
    pub sub: String,
    /// Issued at, in seconds since the epoch.
    pub iat: u64,
    /// Expires at, in seconds since the epoch.
    pub exp: u64,
}

/// A token that could not be issued or does not verify.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct TokenError(#[from] jsonwebtoken::errors::Error);

/// Issues and verifies access tokens with one HMAC secret.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime: Duration,
}

impl Tokens {
    /// Tokens signed with `secret` that live for `lifetime`. Panics if `secret` is empty, which
    /// jsonwebtoken refuses as an HMAC key (the configuration requires at least 32 bytes).
    pub fn new(secret: &[u8], lifetime: Duration) -> Tokens {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["sub", "iat", "exp"]);
        Tokens {
            encoding: EncodingKey::from_secret(secret).expect("a non-empty JWT secret"),
            decoding: DecodingKey::from_secret(secret).expect("a non-empty JWT secret"),
            validation,
            lifetime,
        }
    }

    /// How long a token issued now stays valid.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A signed token whose subject is `user_id`.
    pub fn issue(&self, user_id: i64) -> Result<String, TokenError> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iat,
            exp: iat + self.lifetime.as_secs(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The claims of `token` when it is an unexpired HS256 token signed with this secret.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims)
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-test-secret-that-is-at-least-32-bytes";

    fn tokens() -> Tokens {
        Tokens::new(SECRET, Duration::from_secs(3600))
    }

    #[test]
    fn issued_tokens_verify() {
        let tokens = tokens();
        let claims = tokens.verify(&tokens.issue(42).unwrap()).unwrap();
        assert_eq!(claims.sub, "42");
        assert_eq!(claims.exp - claims.iat, 3600);
    }

    #[test]
    fn another_secret_is_refused() {
        let other = Tokens::new(
            b"another-secret-of-at-least-32-bytes!!",
            Duration::from_secs(60),
        );
        assert!(tokens().verify(&other.issue(1).unwrap()).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = Claims {
            sub: "1".into(),
            iat: now - 100,
            exp: now - 1,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        assert!(tokens().verify(&token).is_err());
    }

    #[test]
    fn other_algorithms_and_none_are_refused() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = Claims {
            sub: "1".into(),
            iat: now,
            exp: now + 60,
        };
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        assert!(tokens().verify(&hs512).is_err());

        // An unsigned token: header {"alg":"none","typ":"JWT"}, the same claims, no signature.
        let valid = tokens().issue(1).unwrap();
        let payload = valid.split('.').nth(1).unwrap();
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(tokens().verify(&unsigned).is_err());
    }

    #[test]
    fn claims_are_required() {
        #[derive(Serialize)]
        struct NoSubject {
            iat: u64,
            exp: u64,
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &NoSubject {
                iat: now,
                exp: now + 60,
            },
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        assert!(tokens().verify(&token).is_err());
    }
}
