//! Refresh tokens: opaque strings of 256 random bits, stored by the server only as hashes.

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A new refresh token: the string the client gets, and the hash the server keeps.
pub struct RefreshToken {
    pub token: String,
    pub hash: [u8; 32],
}

impl RefreshToken {
    /// A fresh token from the system's secure random source.
    pub fn generate() -> RefreshToken {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator works");
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let hash = refresh_token_hash(&token);
        RefreshToken { token, hash }
    }
}

/// The SHA-256 of a presented refresh token, as stored. A fast hash suffices: the token is 256
/// random bits, not a password.
pub fn refresh_token_hash(token: &str) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_256_random_bits_and_are_stored_as_their_hash() {
        let first = RefreshToken::generate();
        let second = RefreshToken::generate();
        assert_eq!(URL_SAFE_NO_PAD.decode(&first.token).unwrap().len(), 32);
        assert_ne!(first.token, second.token);
        assert_eq!(refresh_token_hash(&first.token), first.hash);
        assert_ne!(first.hash, second.hash);
    }
}
