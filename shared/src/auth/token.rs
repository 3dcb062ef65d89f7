//! HS256 access tokens: issued by `/auth/token`, checked by every `/data` endpoint.
//!
//! Several keys may be configured, so that the signing key can be rotated without logging anyone
//! out: the first signs, and every token names its key in the header's `kid`, a fingerprint of
//! the key ([`key_id`]). A token verifies under the configured key its `kid` names; a token
//! without `kid` (issued before keys had ids) only under the first.
//!
//! jsonwebtoken signs. Verifying, on every `/data` request, is done here: jsonwebtoken's
//! `decode` rebuilds the HMAC key from the secret on every call and parses the header and the
//! claims twice each (a third of the adapter's CPU per retrieve), while the checks of an HS256
//! token are few: three base64url parts, a header whose `alg` is HS256, an HMAC-SHA-256 of the
//! first two parts equal to the third (compared in constant time by aws-lc), and claims that
//! hold `sub`, `sid`, `iat` and an `exp` not yet past.
//!
//! A client sends the same token with each request until it expires, so the tokens that
//! verified are kept, by their exact text ([`VerifiedTokens`]): the next request with one costs
//! a hash lookup and the check of its `exp`, instead of base64, an HMAC and two JSON parses (a
//! fifth of the adapter's instructions per retrieve).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// Bytes of the key's SHA-256 digest its id keeps: 72 bits, 12 base64url characters.
const KEY_ID_BYTES: usize = 9;

/// Most tokens [`VerifiedTokens`] keeps. Full, it holds about 1.6 MB, by the sizes of its
/// parts: 8,192 buckets of 81 bytes (a token's box and its claims), and on the heap each
/// token's text (183 bytes for the bench's) and its `sub` and `sid`.
const VERIFIED_TOKENS_KEPT: usize = 4096;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id, as a string.
    pub sub: String,
    /// The session the token belongs to, as a string. Required: a token without it does not
    /// verify.
    pub sid: String,
    /// Issued at, in seconds since the epoch.
    pub iat: u64,
    /// Expires at, in seconds since the epoch.
    pub exp: u64,
}

/// A token that could not be issued or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// jsonwebtoken could not sign the claims.
    #[error(transparent)]
    Issue(#[from] jsonwebtoken::errors::Error),
    /// Not three base64url parts, or a header or claims that are not JSON objects.
    #[error("the token is malformed")]
    Malformed,
    /// The header's `alg` is not HS256 (`none` included).
    #[error("the token's algorithm is not HS256")]
    Algorithm,
    /// The header's `kid` names no configured key (a retired key, or a forgery).
    #[error("the token's kid names no configured key")]
    UnknownKey,
    /// The signature is not the key's HMAC of the token.
    #[error("the token's signature does not verify")]
    Signature,
    /// A required claim is missing or of the wrong type.
    #[error("the token lacks a required claim")]
    Claims,
    /// `exp` is past.
    #[error("the token has expired")]
    Expired,
}

/// The fields of a token's header that verifying reads; others are ignored.
#[derive(Deserialize)]
struct TokenHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
}

/// The `kid` of `key`: base64url (no padding) of the first 9 bytes of its SHA-256 digest. It
/// tells keys apart without revealing them.
pub fn key_id(key: &[u8]) -> String {
    let digest = digest::digest(&digest::SHA256, key);
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..KEY_ID_BYTES])
}

/// One configured key, ready to verify.
struct VerifyingKey {
    id: String,
    key: hmac::Key,
}

/// Issues access tokens with the first configured key and verifies them with any.
pub struct Tokens {
    encoding: EncodingKey,
    signing_key_id: String,
    /// Every configured key, the signing key first.
    keys: Vec<VerifyingKey>,
    lifetime: Duration,
    verified: VerifiedTokens,
}

/// Tokens that verified under this [`Tokens`]' keys, which never change, with their claims.
/// Only a token that verified goes in, so forgeries cannot fill it; its `exp` is checked again
/// at each use. Bounded: when full, it is emptied (at most [`VERIFIED_TOKENS_KEPT`] full
/// verifications later, the tokens in use are back in it).
#[derive(Default)]
struct VerifiedTokens {
    claims: Mutex<HashMap<Box<str>, Claims>>,
}

impl VerifiedTokens {
    fn get(&self, token: &str) -> Option<Claims> {
        self.lock().get(token).cloned()
    }

    fn insert(&self, token: &str, claims: &Claims) {
        let mut kept = self.lock();
        if kept.len() >= VERIFIED_TOKENS_KEPT {
            kept.clear();
        }
        kept.insert(token.into(), claims.clone());
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// The map; a panic elsewhere while it was locked cannot have left it half-changed.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Claims>> {
        self.claims.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Tokens {
    /// Tokens signed with `keys[0]`, verified with any of `keys`, that live for `lifetime`.
    /// Panics if `keys` is empty or the first is empty, which jsonwebtoken refuses as an HMAC
    /// key (the configuration requires keys of at least 32 bytes).
    pub fn new(keys: &[Vec<u8>], lifetime: Duration) -> Tokens {
        let signing = keys.first().expect("at least one JWT key");
        Tokens {
            encoding: EncodingKey::from_secret(signing).expect("a non-empty JWT key"),
            signing_key_id: key_id(signing),
            keys: keys
                .iter()
                .map(|key| VerifyingKey {
                    id: key_id(key),
                    key: hmac::Key::new(hmac::HMAC_SHA256, key),
                })
                .collect(),
            lifetime,
            verified: VerifiedTokens::default(),
        }
    }

    /// How long a token issued now stays valid.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A token of session `session_id` whose subject is `user_id`, signed with the first key
    /// and naming it in its header's `kid`.
    pub fn issue(&self, user_id: i64, session_id: i64) -> Result<String, TokenError> {
        let iat = unix_seconds();
        let claims = Claims {
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            iat,
            exp: iat + self.lifetime.as_secs(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_key_id.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }

    /// The claims of `token` when it is an unexpired HS256 token signed with the configured key
    /// its `kid` names (with the first key when it has no `kid`).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, unix_seconds())
    }

    /// [`Tokens::verify`] at `now`, seconds since the epoch.
    fn verify_at(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let unexpired = |claims: Claims| {
            if claims.exp < now {
                Err(TokenError::Expired)
            } else {
                Ok(claims)
            }
        };
        if let Some(claims) = self.verified.get(token) {
            return unexpired(claims);
        }
        let claims = unexpired(self.check_signed(token)?)?;
        self.verified.insert(token, &claims);
        Ok(claims)
    }

    /// The claims of `token` when it is an HS256 token signed with the configured key its `kid`
    /// names, expired or not.
    fn check_signed(&self, token: &str) -> Result<Claims, TokenError> {
        let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, claims) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        let header = decode_part(header)?;
        let header: TokenHeader<'_> =
            serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm);
        }
        let key = match header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|key| key.id == kid)
                .ok_or(TokenError::UnknownKey)?,
            None => &self.keys[0],
        };
        let signature = decode_part(signature)?;
        hmac::verify(&key.key, signed.as_bytes(), &signature).map_err(|_| TokenError::Signature)?;
        serde_json::from_slice(&decode_part(claims)?).map_err(|_| TokenError::Claims)
    }
}

/// Seconds since the epoch.
fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// One base64url part of a token, decoded (no padding, as JWS writes it).
fn decode_part(part: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("signing_key_id", &self.signing_key_id)
            .field("keys", &self.keys.len())
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-test-secret-that-is-at-least-32-bytes";
    const PREVIOUS: &[u8] = b"the-previous-secret-of-at-least-32-bytes";
    const RETIRED: &[u8] = b"a-retired-secret-that-is-at-least-32-bytes";

    fn tokens() -> Tokens {
        Tokens::new(&[SECRET.to_vec()], Duration::from_secs(3600))
    }

    /// The new key first, the previous one still configured.
    fn rotating() -> Tokens {
        Tokens::new(
            &[SECRET.to_vec(), PREVIOUS.to_vec()],
            Duration::from_secs(3600),
        )
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn valid_claims() -> Claims {
        Claims {
            sub: "1".into(),
            sid: "7".into(),
            iat: now(),
            exp: now() + 60,
        }
    }

    /// `claims` signed by hand with `key`, its header naming `kid`.
    fn sign(
        algorithm: Algorithm,
        key: &[u8],
        kid: Option<String>,
        claims: &impl Serialize,
    ) -> String {
        let mut header = Header::new(algorithm);
        header.kid = kid;
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key).unwrap()).unwrap()
    }

    #[test]
    fn issued_tokens_verify_and_name_their_key() {
        let tokens = rotating();
        let token = tokens.issue(42, 9).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.kid.as_deref(), Some(key_id(SECRET).as_str()));
        let claims = tokens.verify(&token).unwrap();
        assert_eq!(claims.sub, "42");
        assert_eq!(claims.sid, "9");
        assert_eq!(claims.exp - claims.iat, 3600);
    }

    #[test]
    fn key_ids_are_short_fingerprints() {
        let id = key_id(SECRET);
        assert_eq!(id.len(), 12);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(id, key_id(SECRET), "the same key, the same id");
        assert_ne!(id, key_id(PREVIOUS));
        assert!(!String::from_utf8_lossy(SECRET).contains(&id));
    }

    #[test]
    fn tokens_of_the_previous_key_verify_while_it_is_configured() {
        // Issued before the rotation, when PREVIOUS was the only key.
        let before = Tokens::new(&[PREVIOUS.to_vec()], Duration::from_secs(3600));
        let token = before.issue(5, 3).unwrap();
        let claims = rotating().verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("5", "3"));
        // Once the previous key is removed, they no longer do.
        assert!(matches!(
            tokens().verify(&token),
            Err(TokenError::UnknownKey)
        ));
    }

    #[test]
    fn a_kid_that_names_no_configured_key_is_refused() {
        let retired = sign(
            Algorithm::HS256,
            RETIRED,
            Some(key_id(RETIRED)),
            &valid_claims(),
        );
        assert!(matches!(
            rotating().verify(&retired),
            Err(TokenError::UnknownKey)
        ));
        // Nor may a token name a configured key and be signed with another.
        let mislabelled = sign(
            Algorithm::HS256,
            RETIRED,
            Some(key_id(PREVIOUS)),
            &valid_claims(),
        );
        assert!(rotating().verify(&mislabelled).is_err());
    }

    #[test]
    fn tokens_without_kid_are_checked_against_the_first_key_only() {
        let first = sign(Algorithm::HS256, SECRET, None, &valid_claims());
        assert_eq!(rotating().verify(&first).unwrap(), valid_claims());
        let second = sign(Algorithm::HS256, PREVIOUS, None, &valid_claims());
        assert!(rotating().verify(&second).is_err());
    }

    #[test]
    fn another_secret_is_refused() {
        let other = Tokens::new(
            &[b"another-secret-of-at-least-32-bytes!!".to_vec()],
            Duration::from_secs(60),
        );
        assert!(tokens().verify(&other.issue(1, 1).unwrap()).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let claims = Claims {
            sub: "1".into(),
            sid: "1".into(),
            iat: now() - 100,
            exp: now() - 1,
        };
        let token = sign(Algorithm::HS256, SECRET, Some(key_id(SECRET)), &claims);
        assert!(tokens().verify(&token).is_err());
    }

    #[test]
    fn other_algorithms_and_none_are_refused() {
        let hs512 = sign(
            Algorithm::HS512,
            SECRET,
            Some(key_id(SECRET)),
            &valid_claims(),
        );
        assert!(tokens().verify(&hs512).is_err());

        // An unsigned token: header {"alg":"none","typ":"JWT"}, the same claims, no signature;
        // and the same with the key's id.
        let valid = tokens().issue(1, 1).unwrap();
        let payload = valid.split('.').nth(1).unwrap();
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(tokens().verify(&unsigned).is_err());
        let header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
            key_id(SECRET)
        ));
        assert!(tokens().verify(&format!("{header}.{payload}.")).is_err());
    }

    #[test]
    fn claims_are_required() {
        #[derive(Serialize)]
        struct NoSubject {
            sid: String,
            iat: u64,
            exp: u64,
        }
        #[derive(Serialize)]
        struct NoSession {
            sub: String,
            iat: u64,
            exp: u64,
        }
        let no_subject = NoSubject {
            sid: "1".into(),
            iat: now(),
            exp: now() + 60,
        };
        let no_session = NoSession {
            sub: "1".into(),
            iat: now(),
            exp: now() + 60,
        };
        for token in [
            sign(Algorithm::HS256, SECRET, Some(key_id(SECRET)), &no_subject),
            sign(Algorithm::HS256, SECRET, Some(key_id(SECRET)), &no_session),
            sign(Algorithm::HS256, SECRET, None, &no_session),
        ] {
            assert!(tokens().verify(&token).is_err());
        }
    }

    #[test]
    fn verified_tokens_are_kept_and_still_expire() {
        let tokens = tokens();
        let token = tokens.issue(3, 4).unwrap();
        let claims = tokens.verify(&token).unwrap();
        assert_eq!(tokens.verified.len(), 1);
        assert_eq!(tokens.verify(&token).unwrap(), claims);
        assert_eq!(
            tokens.verified.len(),
            1,
            "verified again from what was kept"
        );
        assert_eq!(tokens.verify_at(&token, claims.exp).unwrap(), claims);
        assert!(matches!(
            tokens.verify_at(&token, claims.exp + 1),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn only_tokens_that_verify_are_kept() {
        let tokens = rotating();
        let valid = tokens.issue(1, 1).unwrap();
        let (signed, _) = valid.rsplit_once('.').unwrap();
        let expired = Claims {
            iat: now() - 100,
            exp: now() - 1,
            ..valid_claims()
        };
        let refused = [
            format!("{signed}.AAAA"),
            sign(
                Algorithm::HS256,
                RETIRED,
                Some(key_id(RETIRED)),
                &valid_claims(),
            ),
            sign(
                Algorithm::HS256,
                RETIRED,
                Some(key_id(PREVIOUS)),
                &valid_claims(),
            ),
            sign(Algorithm::HS256, SECRET, Some(key_id(SECRET)), &expired),
            "a.b.c".into(),
        ];
        for token in &refused {
            assert!(tokens.verify(token).is_err(), "{token}");
            assert!(tokens.verify(token).is_err(), "{token}, asked again");
        }
        assert_eq!(tokens.verified.len(), 0);
    }

    #[test]
    fn the_kept_tokens_are_bounded() {
        let tokens = tokens();
        let issued: Vec<String> = (0..=VERIFIED_TOKENS_KEPT as i64)
            .map(|user| tokens.issue(user, 1).unwrap())
            .collect();
        for token in &issued {
            tokens.verify(token).unwrap();
            assert!(tokens.verified.len() <= VERIFIED_TOKENS_KEPT);
        }
        assert_eq!(
            tokens.verified.len(),
            1,
            "emptied when full, then the last one kept"
        );
        assert_eq!(tokens.verify(&issued[0]).unwrap().sub, "0");
    }

    /// jsonwebtoken's own `decode`, set up as this module verified before it verified by hand.
    fn jsonwebtoken_verdict(token: &str, key: &[u8]) -> bool {
        let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["sub", "iat", "exp"]);
        let key = jsonwebtoken::DecodingKey::from_secret(key).unwrap();
        jsonwebtoken::decode::<Claims>(token, &key, &validation).is_ok()
    }

    /// Every one-character change of a valid token (each position, to a few characters), and a
    /// set of hand-made tokens, get the same verdict here as from jsonwebtoken's `decode`.
    #[test]
    fn verdicts_agree_with_jsonwebtoken() {
        let tokens = tokens();
        let valid = tokens.issue(42, 7).unwrap();
        let mut cases = vec![valid.clone()];
        for (index, _) in valid.char_indices() {
            for replacement in ['A', 'x', '_', '-', '.', '0'] {
                let mut changed = valid.clone();
                changed.replace_range(index..=index, &replacement.to_string());
                cases.push(changed);
            }
            cases.push(format!("{}{}", &valid[..index], &valid[index + 1..]));
        }
        let at = |exp: u64| Claims {
            exp,
            ..valid_claims()
        };
        #[derive(Serialize)]
        struct Extra {
            sub: String,
            sid: String,
            iat: u64,
            exp: u64,
            role: &'static str,
        }
        let extra = Extra {
            sub: "1".into(),
            sid: "2".into(),
            iat: now(),
            exp: now() + 60,
            role: "admin",
        };
        let kid = Some(key_id(SECRET));
        cases.extend([
            sign(Algorithm::HS256, SECRET, kid.clone(), &at(now() + 5)),
            sign(Algorithm::HS256, SECRET, kid.clone(), &at(now() - 5)),
            sign(Algorithm::HS256, SECRET, None, &valid_claims()),
            sign(Algorithm::HS256, SECRET, kid.clone(), &extra),
            sign(Algorithm::HS384, SECRET, kid.clone(), &valid_claims()),
            sign(Algorithm::HS256, PREVIOUS, kid, &valid_claims()),
            String::new(),
            "..".into(),
            "a.b.c".into(),
            format!("{valid}.x"),
            format!("{valid}="),
        ]);
        for case in &cases {
            assert_eq!(
                tokens.verify(case).is_ok(),
                jsonwebtoken_verdict(case, SECRET),
                "{case}"
            );
        }
        assert!(cases.len() > 1000, "{}", cases.len());
    }

    #[test]
    fn refusals_say_why() {
        let tokens = tokens();
        let valid = tokens.issue(1, 1).unwrap();
        let (signed, _) = valid.rsplit_once('.').unwrap();
        let (header, _) = signed.split_once('.').unwrap();
        let forged_claims =
            URL_SAFE_NO_PAD.encode(r#"{"sub":"2","sid":"1","iat":1,"exp":99999999999}"#);
        let expired = Claims {
            exp: now() - 1,
            ..valid_claims()
        };
        let no_session = URL_SAFE_NO_PAD.encode(r#"{"sub":"2","iat":1,"exp":99999999999}"#);
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
        let signed_no_session = format!("{header}.{no_session}");
        let tag = hmac::sign(&key, signed_no_session.as_bytes());
        let cases = [
            ("only.two", "Malformed"),
            ("a!.b.c", "Malformed"),
            (&*format!("{header}.{forged_claims}.AAAA"), "Signature"),
            (
                &*format!(
                    "{signed_no_session}.{}",
                    URL_SAFE_NO_PAD.encode(tag.as_ref())
                ),
                "Claims",
            ),
            (
                &*sign(Algorithm::HS256, SECRET, Some(key_id(SECRET)), &expired),
                "Expired",
            ),
            (
                &*sign(
                    Algorithm::HS512,
                    SECRET,
                    Some(key_id(SECRET)),
                    &valid_claims(),
                ),
                "Algorithm",
            ),
            (
                &*sign(
                    Algorithm::HS256,
                    SECRET,
                    Some("unknown".into()),
                    &valid_claims(),
                ),
                "UnknownKey",
            ),
        ];
        for (token, why) in cases {
            let refusal = tokens.verify(token).unwrap_err();
            assert_eq!(format!("{refusal:?}"), why, "{token}");
        }
    }

    #[test]
    #[should_panic(expected = "at least one JWT key")]
    fn no_keys_is_a_programming_error() {
        Tokens::new(&[], Duration::from_secs(60));
    }
}
