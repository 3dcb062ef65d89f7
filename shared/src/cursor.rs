//! The opaque cursors of `GET /data/list`: the last key of a page, signed for one user and one
//! prefix, so that a cursor cannot be altered, forged, or used by another user or with another
//! prefix.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Bytes of the signature a cursor carries (128 bits).
const SIGNATURE_BYTES: usize = 16;

/// Signs and opens list cursors with a key derived from the service's secret.
pub struct ListCursors {
    key: hmac::Key,
}

impl std::fmt::Debug for ListCursors {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ListCursors(<redacted>)")
    }
}

impl ListCursors {
    /// Cursors keyed by `secret`, under a key of their own: a cursor is never a valid token
    /// signature, nor the reverse.
    pub fn new(secret: &[u8]) -> ListCursors {
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, secret),
            b"kv list cursor v1",
        );
        ListCursors {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// The cursor that resumes the listing of `user_id`'s keys starting with `prefix` after
    /// `last_key`.
    pub fn encode(&self, user_id: i64, prefix: &str, last_key: &str) -> String {
        let signature = self.signature(user_id, prefix, last_key);
        let mut raw = Vec::with_capacity(SIGNATURE_BYTES + last_key.len());
        raw.extend_from_slice(&signature.as_ref()[..SIGNATURE_BYTES]);
        raw.extend_from_slice(last_key.as_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The last key a cursor carries, if `encode` made it for this user and prefix.
    pub fn decode(&self, cursor: &str, user_id: i64, prefix: &str) -> Option<String> {
        let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        if raw.len() <= SIGNATURE_BYTES {
            return None;
        }
        let (signature, last_key) = raw.split_at(SIGNATURE_BYTES);
        let last_key = String::from_utf8(last_key.to_vec()).ok()?;
        let expected = self.signature(user_id, prefix, &last_key);
        // The comparison takes the same time wherever the signatures differ.
        aws_lc_rs::constant_time::verify_slices_are_equal(
            signature,
            &expected.as_ref()[..SIGNATURE_BYTES],
        )
        .ok()?;
        Some(last_key)
    }

    fn signature(&self, user_id: i64, prefix: &str, last_key: &str) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(&user_id.to_be_bytes());
        context.update(&(prefix.len() as u64).to_be_bytes());
        context.update(prefix.as_bytes());
        context.update(last_key.as_bytes());
        context.sign()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_opens_only_for_its_user_and_prefix() {
        let cursors = ListCursors::new(b"a secret of at least thirty-two bytes");
        let cursor = cursors.encode(7, "a/", "a/b c");
        assert_eq!(cursors.decode(&cursor, 7, "a/").as_deref(), Some("a/b c"));
        assert_eq!(cursors.decode(&cursor, 8, "a/"), None);
        assert_eq!(cursors.decode(&cursor, 7, "a"), None);
        assert_eq!(cursors.decode(&cursor, 7, ""), None);
        let other = ListCursors::new(b"another secret of at least thirty-two bytes");
        assert_eq!(other.decode(&cursor, 7, "a/"), None);
    }

    #[test]
    fn altered_or_foreign_cursors_are_refused() {
        let cursors = ListCursors::new(b"a secret of at least thirty-two bytes");
        let cursor = cursors.encode(7, "", "key");
        let mut altered = cursor.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            cursors.decode(std::str::from_utf8(&altered).unwrap(), 7, ""),
            None
        );
        for garbage in ["", "!!!", "AAAA", &URL_SAFE_NO_PAD.encode([0u8; 16])] {
            assert_eq!(cursors.decode(garbage, 7, ""), None, "{garbage}");
        }
    }
}
