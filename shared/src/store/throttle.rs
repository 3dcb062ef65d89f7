//! Failed logins, counted per username and per client address (the contract's "Login
//! throttling").
//!
//! One row of `login_failures` is one attempt whose password is being checked or was found
//! wrong, and counts both for its username and for its address. A row is either *settled* (the
//! password was wrong: a failure) or not yet (the attempt is in flight). Only failures
//! throttle: a row counts as a failure when it is settled, or when it has stayed unsettled for
//! [`LOGIN_IN_FLIGHT_GRACE`] or longer (its attempt ended without a verdict, client gone or an
//! error on the way, and is taken for a failure rather than forgiven). A younger unsettled row
//! is an attempt in flight.
//!
//! Races are settled by the database, never by a read before a write: an attempt first inserts
//! its row, unsettled, and only then counts, in one statement, the window's failures and its
//! attempts in flight, for its username and for its address, its own row aside. Then:
//!
//! - failures of the username or of the address at their limit: the attempt is throttled. It
//!   deletes its own row (throttled attempts are no failures) and hashes no password;
//!   `Retry-After` comes from the failures alone.
//! - failures and attempts in flight together below both limits: the password is checked. A
//!   wrong one settles the row ([`Store::record_login_failure`]); a right one deletes the
//!   username's rows up to its own ([`Store::record_login_success`]), which clears its failures.
//! - otherwise the limit is reached only with attempts in flight, which may yet succeed: that is
//!   contention, not throttling. The attempt deletes its own row, so that an attempt that waits
//!   never counts as in flight for others (or six waiters would wait on each other for ever),
//!   and its caller tries again from the insert a moment later; after a few seconds in vain it
//!   answers 503 (`auth/throttle.rs`).
//!
//! Of two concurrent attempts, the one that counts second sees the other's row, since each
//! inserts before it counts: so the attempt of a burst that counts last sees the rows of all
//! the others that were let through, settled or in flight, and at most the limit of them are
//! ever checked. (Counting only the rows of lower ids would not do on MySQL, where an id is
//! allocated before its row commits: two attempts could each miss the other.) Concurrent logins
//! with the right password are never throttled, since none of them fails: beyond the limit
//! they take turns.
//!
//! Usernames are stored as the hex SHA-256 of the lowercased name as written, so that any name,
//! valid or not, long or odd, fits the column, and the table names no user in clear.

use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};

use super::statement::statement;
use super::{NewRowId, Store, StoreError};

/// The longest address kept, in characters: any IPv6 address in text fits.
const MAX_ADDRESS_CHARS: usize = 45;

/// How long an unsettled row is taken for an attempt in flight; from then on it counts as a
/// failure.
/// An attempt that is let through settles its row or deletes it as soon as its password is
/// checked, which takes about 20 ms (one Argon2 hash), but a queue for the hashing threads or
/// for database connections under load can hold it far longer, and an honest attempt should
/// not turn into a failure while it waits. An attempt that never settles (its client went
/// away, or an error) holds up the other attempts of its username for at most this long before
/// it counts as the failure it may have been. With a window shorter than this (only tests use
/// one), such an attempt leaves the window first and never counts.
pub const LOGIN_IN_FLIGHT_GRACE: Duration = Duration::from_secs(10);

/// How many failures throttle, and for how long they count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures of one username within the window after which its attempts are throttled.
    pub per_username: u32,
    /// Failures from one address within the window after which its attempts are throttled.
    pub per_address: u32,
    /// How long a failure counts.
    pub window: Duration,
}

/// What [`Store::begin_login_attempt`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginAttempt {
    /// The password may be checked. The attempt's row stays, in flight, until
    /// [`Store::record_login_failure`] settles it or [`Store::record_login_success`] deletes it;
    /// left alone, it counts as a failure after [`LOGIN_IN_FLIGHT_GRACE`].
    Allowed(PendingLogin),
    /// Too many failures: answer 429 with this `Retry-After`. Nothing was recorded.
    Throttled { retry_after_secs: u64 },
    /// Below the limit of failures, but at it with the attempts in flight: try again shortly.
    /// Nothing was recorded.
    Contended,
}

/// An attempt whose row is in the table, in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    id: i64,
    username_key: String,
}

/// The key under which a username's failures are counted: the hex SHA-256 of the name as
/// written, lowercased.
pub fn login_username_key(username: &str) -> String {
    let hash = digest(&SHA256, username.to_lowercase().as_bytes());
    hash.as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The address as stored: at most [`MAX_ADDRESS_CHARS`] characters.
fn address_key(address: &str) -> &str {
    match address.char_indices().nth(MAX_ADDRESS_CHARS) {
        Some((end, _)) => &address[..end],
        None => address,
    }
}

/// The whole seconds, at least 1, from `now` until the failure at `oldest_counted` leaves a
/// window of `window_millis`, when it is the failure whose ageing out brings the count below
/// the limit. Never more than the window.
pub fn retry_after_secs(oldest_counted: i64, window_millis: i64, now: i64) -> u64 {
    let wait_millis = oldest_counted
        .saturating_add(window_millis)
        .saturating_sub(now)
        .clamp(0, window_millis.max(0));
    u64::try_from(wait_millis)
        .unwrap_or(0)
        .div_ceil(1000)
        .max(1)
}

/// The failure whose ageing out ends a throttle, given the window's failures of one username
/// or address, newest first, at most `limit` of them: the `limit`-th newest, which is the
/// `(n - limit + 1)`-th oldest of `n`. `None` when fewer than `limit` remain.
fn deciding_failure(newest_first: &[i64], limit: u32) -> Option<i64> {
    let index = usize::try_from(limit).ok()?.checked_sub(1)?;
    newest_first.get(index).copied()
}

/// Counts, in the window, the failures of a username and all its rows (failures and attempts
/// in flight), then the same for an address, the attempt's own row aside. A row is a failure
/// when it is settled or was recorded at or before the grace's cutoff.
const COUNT: &str = "SELECT \
     (SELECT COUNT(*) FROM login_failures WHERE username_key = ? AND failed_at > ? AND id <> ? \
         AND (settled <> 0 OR failed_at <= ?)), \
     (SELECT COUNT(*) FROM login_failures WHERE username_key = ? AND failed_at > ? AND id <> ?), \
     (SELECT COUNT(*) FROM login_failures WHERE address = ? AND failed_at > ? AND id <> ? \
         AND (settled <> 0 OR failed_at <= ?)), \
     (SELECT COUNT(*) FROM login_failures WHERE address = ? AND failed_at > ? AND id <> ?)";

/// The newest failures of a username in the window, its own row aside (no attempt in flight).
const NEWEST_OF_USERNAME: &str = "SELECT failed_at FROM login_failures \
     WHERE username_key = ? AND failed_at > ? AND id <> ? AND (settled <> 0 OR failed_at <= ?) \
     ORDER BY failed_at DESC LIMIT ?";

/// The newest failures of an address in the window, its own row aside (no attempt in flight).
const NEWEST_OF_ADDRESS: &str = "SELECT failed_at FROM login_failures \
     WHERE address = ? AND failed_at > ? AND id <> ? AND (settled <> 0 OR failed_at <= ?) \
     ORDER BY failed_at DESC LIMIT ?";

impl Store {
    /// Records a login attempt for `username_key` (see [`login_username_key`]) from `address`
    /// at `now` (milliseconds since the epoch) as an attempt in flight, and decides whether it
    /// may go on. A throttled or contended attempt leaves no row.
    pub async fn begin_login_attempt(
        &self,
        username_key: &str,
        address: &str,
        now: i64,
        limits: &LoginLimits,
    ) -> Result<LoginAttempt, StoreError> {
        let address = address_key(address);
        let window_millis = i64::try_from(limits.window.as_millis()).unwrap_or(i64::MAX);
        let since = now.saturating_sub(window_millis);
        let grace_millis = i64::try_from(LOGIN_IN_FLIGHT_GRACE.as_millis()).unwrap_or(i64::MAX);
        let settled_before = now.saturating_sub(grace_millis);
        let id = on_connection!(self, connection => statement(
                "INSERT INTO login_failures (username_key, address, failed_at, settled) \
                 VALUES (?, ?, ?, 0)")
            .bind(username_key)
            .bind(address)
            .bind(now)
            .execute(connection)
            .await
            .map(|done| done.new_row_id()))?;
        let (failures_of_username, rows_of_username, failures_of_address, rows_of_address): (
            i64,
            i64,
            i64,
            i64,
        ) = on_connection!(self, connection => statement(COUNT)
                .bind(username_key)
                .bind(since)
                .bind(id)
                .bind(settled_before)
                .bind(username_key)
                .bind(since)
                .bind(id)
                .bind(address)
                .bind(since)
                .bind(id)
                .bind(settled_before)
                .bind(address)
                .bind(since)
                .bind(id)
                .fetch_one(connection)
                .await)?;
        let per_username = i64::from(limits.per_username);
        let per_address = i64::from(limits.per_address);
        if rows_of_username < per_username && rows_of_address < per_address {
            return Ok(LoginAttempt::Allowed(PendingLogin {
                id,
                username_key: username_key.to_owned(),
            }));
        }

        on_connection!(self, connection => statement("DELETE FROM login_failures WHERE id = ?")
            .bind(id)
            .execute(connection)
            .await
            .map(drop))?;
        let username_throttled = failures_of_username >= per_username;
        let address_throttled = failures_of_address >= per_address;
        if !username_throttled && !address_throttled {
            return Ok(LoginAttempt::Contended);
        }
        // Only a throttled attempt pays for this read. Failures may have aged out or been
        // cleared since the count: then an attempt may succeed at once, after a second.
        let mut retry_after = 1;
        for (throttled, newest_failures, key, limit) in [
            (
                username_throttled,
                NEWEST_OF_USERNAME,
                username_key,
                limits.per_username,
            ),
            (
                address_throttled,
                NEWEST_OF_ADDRESS,
                address,
                limits.per_address,
            ),
        ] {
            if !throttled {
                continue;
            }
            let newest: Vec<(i64,)> = on_connection!(self, connection => statement(newest_failures)
                .bind(key)
                .bind(since)
                .bind(id)
                .bind(settled_before)
                .bind(i64::from(limit))
                .fetch_all(connection)
                .await)?;
            let newest: Vec<i64> = newest.into_iter().map(|(failed_at,)| failed_at).collect();
            if let Some(failed_at) = deciding_failure(&newest, limit) {
                retry_after = retry_after.max(retry_after_secs(failed_at, window_millis, now));
            }
        }
        Ok(LoginAttempt::Throttled {
            retry_after_secs: retry_after,
        })
    }

    /// The attempt's password was wrong: settles its row, which is a failure from now on. Its
    /// row may be gone already, deleted by a concurrent success of its username (which clears
    /// the failures before it) or by the clean-up: then there is nothing to settle.
    pub async fn record_login_failure(&self, attempt: &PendingLogin) -> Result<(), StoreError> {
        on_connection!(self, connection => statement(
                "UPDATE login_failures SET settled = 1 WHERE id = ?")
            .bind(attempt.id)
            .execute(connection)
            .await
            .map(drop))?;
        Ok(())
    }

    /// The attempt's password was right: clears the failures of its username, its own row
    /// included. Rows of attempts that began after it (higher ids) stay, whatever they turn out
    /// to be; those of attempts in flight that began before it go with the failures, so that a
    /// wrong password among them counts as if it had been checked before this right one.
    pub async fn record_login_success(&self, attempt: &PendingLogin) -> Result<(), StoreError> {
        on_connection!(self, connection => statement(
                "DELETE FROM login_failures WHERE username_key = ? AND id <= ?")
            .bind(&attempt.username_key)
            .bind(attempt.id)
            .execute(connection)
            .await
            .map(drop))?;
        Ok(())
    }

    /// The attempt's password could not be checked (the hashing queue was full): deletes its
    /// row, as for a throttled attempt, so that it counts neither as a failure nor in flight.
    pub async fn withdraw_login_attempt(&self, attempt: &PendingLogin) -> Result<(), StoreError> {
        on_connection!(self, connection => statement("DELETE FROM login_failures WHERE id = ?")
            .bind(attempt.id)
            .execute(connection)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Deletes the rows recorded before `cutoff` (milliseconds since the epoch), settled or
    /// not, which no longer count once the window has passed them; returns how many went. For the periodic
    /// clean-up: throttling is right without it, the table only grows.
    pub async fn delete_login_failures_before(&self, cutoff: i64) -> Result<u64, StoreError> {
        let deleted = on_connection!(self, connection => statement(
                "DELETE FROM login_failures WHERE failed_at < ?")
            .bind(cutoff)
            .execute(connection)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_keyed_case_insensitively_as_hex_sha256() {
        let key = login_username_key("Alice");
        assert_eq!(key, login_username_key("alice"));
        assert_eq!(key, login_username_key("ALICE"));
        assert_ne!(key, login_username_key("alice2"));
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|byte| byte.is_ascii_hexdigit()));
        // SHA-256 of "abc".
        assert_eq!(
            login_username_key("ABC"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Any name fits.
        assert_eq!(login_username_key(&"ключ ".repeat(1000)).len(), 64);
    }

    #[test]
    fn long_addresses_are_cut() {
        assert_eq!(address_key("203.0.113.10"), "203.0.113.10");
        assert_eq!(address_key(&"é".repeat(50)), "é".repeat(45));
    }

    #[test]
    fn retry_after_counts_whole_seconds_until_the_deciding_failure_ages_out() {
        let window = 900_000;
        let now = 10_000_000;
        // Failed 100 s ago: out of the window in 800 s.
        assert_eq!(retry_after_secs(now - 100_000, window, now), 800);
        // Rounded up.
        assert_eq!(retry_after_secs(now - 100_001, window, now), 800);
        assert_eq!(retry_after_secs(now - 99_999, window, now), 801);
        // Just failed: the whole window.
        assert_eq!(retry_after_secs(now, window, now), 900);
        // A clock ahead of ours never asks for more than the window.
        assert_eq!(retry_after_secs(now + 60_000, window, now), 900);
        // About to age out, or already out: at least one second.
        assert_eq!(retry_after_secs(now - window + 1, window, now), 1);
        assert_eq!(retry_after_secs(now - window, window, now), 1);
        assert_eq!(retry_after_secs(now - window - 5_000, window, now), 1);
    }

    #[test]
    fn the_deciding_failure_is_the_limit_th_newest() {
        // Newest first; limit 3 of 5 failures: the 3rd oldest, i.e. the 3rd newest.
        let newest_first = [50, 40, 30, 20, 10];
        assert_eq!(deciding_failure(&newest_first[..3], 3), Some(30));
        assert_eq!(deciding_failure(&newest_first, 5), Some(10));
        assert_eq!(deciding_failure(&newest_first[..1], 1), Some(50));
        // Fewer than the limit remain: not throttled any more.
        assert_eq!(deciding_failure(&newest_first[..2], 3), None);
        assert_eq!(deciding_failure(&[], 1), None);
        assert_eq!(deciding_failure(&newest_first, 0), None);
    }
}
