//! `GET /data/list`: the caller's keys in ascending byte order, a page at a time, resumed by
//! signed cursors (keyset pagination over the primary key, never an offset).

use axum::Json;
use axum::extract::{RawQuery, State};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Success, success_data};
use crate::AppState;
use crate::auth::AuthUser;
use crate::cursor::ListCursors;
use crate::error::ApiError;
use crate::store::ListedEntry;

/// Keys per page when `limit` is not given.
const DEFAULT_LIMIT: u32 = 100;
/// Most keys per page.
const MAX_LIMIT: u32 = 1000;
/// Longest prefix, in characters (as long as a key).
const MAX_PREFIX_CHARS: usize = 255;

/// The query parameters, as given: each at most once.
#[derive(Debug, Default, PartialEq, Eq)]
struct ListQuery {
    prefix: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

impl ListQuery {
    /// Reads `prefix`, `limit` and `cursor` from a query string of percent-encoded UTF-8 in
    /// which `+` is a space; other parameters are ignored.
    fn parse(query: Option<&str>) -> Result<ListQuery, ApiError> {
        let mut parsed = ListQuery::default();
        for pair in query
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match decode(name).as_deref() {
                Ok("prefix") => &mut parsed.prefix,
                Ok("limit") => &mut parsed.limit,
                Ok("cursor") => &mut parsed.cursor,
                _ => continue,
            };
            if slot.replace(decode(value)?).is_some() {
                return Err(ApiError::InvalidQuery);
            }
        }
        Ok(parsed)
    }
}

fn decode(component: &str) -> Result<String, ApiError> {
    percent_decode_str(&component.replace('+', " "))
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| ApiError::InvalidQuery)
}

fn parse_limit(limit: Option<&str>) -> Result<u32, ApiError> {
    let Some(limit) = limit else {
        return Ok(DEFAULT_LIMIT);
    };
    if limit.is_empty() || !limit.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ApiError::InvalidQuery);
    }
    match limit.parse::<u32>() {
        Ok(limit @ 1..=MAX_LIMIT) => Ok(limit),
        _ => Err(ApiError::InvalidQuery),
    }
}

fn valid_prefix(prefix: &str) -> bool {
    prefix.chars().count() <= MAX_PREFIX_CHARS && !prefix.chars().any(char::is_control)
}

#[derive(Debug, Serialize)]
pub(super) struct Page {
    keys: Vec<ListedKey>,
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct ListedKey {
    #[serde(rename = "keyN")]
    key: String,
    etag: String,
    size: i64,
    expires_at: Option<String>,
}

impl From<ListedEntry> for ListedKey {
    fn from(entry: ListedEntry) -> ListedKey {
        ListedKey {
            etag: entry.etag.quoted(),
            size: entry.size,
            expires_at: entry.expires_at.map(rfc3339_seconds),
            key: entry.key,
        }
    }
}

/// `2026-12-01T18:00:00Z`: the second in which `millis` (since the epoch) falls, in UTC.
fn rfc3339_seconds(millis: i64) -> String {
    OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// What a listing asks for: the keys that start with `prefix`, at most `limit` of them, from
/// after the key `after` (the cursor's) if given.
struct PageRequest {
    prefix: String,
    limit: u32,
    after: Option<String>,
}

impl PageRequest {
    /// The request `query` makes of `user_id`'s listing; INVALID_QUERY when it is not valid.
    fn parse(
        query: Option<&str>,
        cursors: &ListCursors,
        user_id: i64,
    ) -> Result<PageRequest, ApiError> {
        let query = ListQuery::parse(query)?;
        let prefix = query.prefix.unwrap_or_default();
        if !valid_prefix(&prefix) {
            return Err(ApiError::InvalidQuery);
        }
        let limit = parse_limit(query.limit.as_deref())?;
        let after = match query.cursor {
            None => None,
            Some(cursor) => Some(
                cursors
                    .decode(&cursor, user_id, &prefix)
                    .ok_or(ApiError::InvalidQuery)?,
            ),
        };
        Ok(PageRequest {
            prefix,
            limit,
            after,
        })
    }
}

pub(super) async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    RawQuery(query): RawQuery,
) -> Result<Json<Success<Page>>, ApiError> {
    let request = PageRequest::parse(query.as_deref(), &state.cursors, user.user_id);
    let PageRequest {
        prefix,
        limit,
        after,
    } = user.checked(&state.store, request).await?;
    // One more than the page, to tell whether another page follows.
    let mut entries = state
        .store
        .list_entries(user.session(), &prefix, after.as_deref(), limit + 1)
        .await?;
    let next_cursor = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries
            .last()
            .map(|last| state.cursors.encode(user.user_id, &prefix, &last.key))
    } else {
        None
    };
    let keys = entries.into_iter().map(ListedKey::from).collect();
    Ok(success_data(None, Page { keys, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded_as_forms_are() {
        let query =
            ListQuery::parse(Some("prefix=a%2Fb+c&limit=5&other=x&other=y&cursor=")).unwrap();
        assert_eq!(query.prefix.as_deref(), Some("a/b c"));
        assert_eq!(query.limit.as_deref(), Some("5"));
        assert_eq!(query.cursor.as_deref(), Some(""));
        assert_eq!(ListQuery::parse(None).unwrap(), ListQuery::default());
        assert_eq!(ListQuery::parse(Some("&&")).unwrap(), ListQuery::default());
    }

    #[test]
    fn repeated_or_undecodable_parameters_are_refused() {
        for query in [
            "limit=1&limit=1",
            "prefix=&prefix=",
            "prefix=%FF",
            "cursor=a&cursor=b",
        ] {
            assert!(ListQuery::parse(Some(query)).is_err(), "{query}");
        }
        // A parameter of no concern may be anything.
        assert!(ListQuery::parse(Some("%FF=%FF&x=1&x=2")).is_ok());
    }

    #[test]
    fn limits_are_integers_from_1_to_1000() {
        assert_eq!(parse_limit(None).unwrap(), 100);
        assert_eq!(parse_limit(Some("1")).unwrap(), 1);
        assert_eq!(parse_limit(Some("1000")).unwrap(), 1000);
        for bad in [
            "",
            "0",
            "1001",
            "+5",
            "-1",
            "5.0",
            "1e2",
            " 5",
            "99999999999999999999",
        ] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiry_times_are_whole_seconds_in_utc() {
        assert_eq!(rfc3339_seconds(1_796_148_000_000), "2026-12-01T18:00:00Z");
        assert_eq!(rfc3339_seconds(1_796_148_000_999), "2026-12-01T18:00:00Z");
    }

    #[test]
    fn prefixes_are_checked_as_keys_are_but_may_be_empty() {
        assert!(valid_prefix(""));
        assert!(valid_prefix(&"é".repeat(255)));
        assert!(!valid_prefix(&"a".repeat(256)));
        assert!(!valid_prefix("a\nb"));
    }
}
