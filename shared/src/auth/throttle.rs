//! Login throttling as handlers use it: [`LoginThrottle::begin`] before a password is checked,
//! then [`LoginGuard::succeeded`] when it was right or [`LoginGuard::failed`] when it was wrong.
//! The counting itself is the store's (see `store/throttle.rs`); here, an attempt that finds
//! the limit reached only by attempts in flight of its username or address waits for them, in
//! short jittered pauses, and tries again.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::ApiError;
use crate::routes::ClientAddress;
use crate::store::{
    LoginAttempt, LoginLimits, PendingLogin, Store, login_username_key, now_millis,
};

/// How long, in all, an attempt waits for attempts in flight of its username or address before
/// it gives up with 503. Those settle within a hash each (about 20 ms), at most the limit at
/// once, so a few seconds let dozens of concurrent logins of one username through, and stay
/// well within a client's patience and the login functions' 15 s timeout. Waiters are not served
/// in order, though: under a sustained flood of logins of one username, the unlucky ones wait
/// this long and get 503.
const CONTENTION_MAX_WAIT: Duration = Duration::from_secs(5);

/// The first pause of a waiting attempt: about half a hash, so that a few attempts over the
/// limit get in soon after the first ones end. Each further pause doubles, up to
/// [`CONTENTION_MAX_PAUSE`], and each is jittered (between half and all of it), so that the
/// waiters of one burst do not all come back at once.
const CONTENTION_FIRST_PAUSE: Duration = Duration::from_millis(10);

/// The longest pause of a waiting attempt. Each try costs three statements (insert, count,
/// delete): dozens of waiters trying every few tens of milliseconds would take the CPU and the
/// database from the attempts they wait for (measured: with 64 concurrent logins of one user,
/// pauses of 20 ms let almost none through, pauses up to 320 ms the most).
const CONTENTION_MAX_PAUSE: Duration = Duration::from_millis(250);

/// The `Retry-After` of an attempt that waited [`CONTENTION_MAX_WAIT`] in vain.
const CONTENTION_RETRY_AFTER_SECS: u64 = 1;

/// How many failed logins throttle, and for how long each counts: `LOGIN_MAX_FAILURES`,
/// `LOGIN_MAX_FAILURES_PER_ADDRESS` and `LOGIN_WINDOW_SECONDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Failures of one username (case-insensitive) within the window that throttle it.
    pub max_failures: u32,
    /// Failures from one client address within the window that throttle it.
    pub max_failures_per_address: u32,
    /// How long a failure counts.
    pub window: Duration,
}

impl Default for LoginThrottle {
    /// The contract's defaults: 5 failures per username, 100 per address, in 900 s.
    fn default() -> Self {
        LoginThrottle {
            max_failures: 5,
            max_failures_per_address: 100,
            window: Duration::from_secs(900),
        }
    }
}

/// A login attempt that was let through: its password may be checked. Call
/// [`LoginGuard::failed`] or [`LoginGuard::succeeded`] once it is. Dropped without either (an
/// error on the way, or the client gone), the attempt stays in flight and counts as a failure
/// after the store's grace (`LOGIN_IN_FLIGHT_GRACE`).
#[must_use = "call `failed` or `succeeded` once the password is checked"]
#[derive(Debug)]
pub struct LoginGuard {
    store: Store,
    attempt: PendingLogin,
}

impl LoginThrottle {
    /// Starts a login attempt of `username` (as the caller wrote it; any string) from
    /// `address`: [`ApiError::TooManyAttempts`] when the username or the address is throttled,
    /// before any password is hashed. While the limit is reached only with attempts in flight,
    /// it waits for them, up to [`CONTENTION_MAX_WAIT`], then answers
    /// [`ApiError::Overloaded`]. Call it after the request's fields are checked, since the
    /// attempt is recorded from here on.
    pub async fn begin(
        &self,
        store: &Store,
        username: &str,
        address: &ClientAddress,
    ) -> Result<LoginGuard, ApiError> {
        let limits = LoginLimits {
            per_username: self.max_failures,
            per_address: self.max_failures_per_address,
            window: self.window,
        };
        let key = login_username_key(username);
        let give_up_at = Instant::now() + CONTENTION_MAX_WAIT;
        let mut pause = CONTENTION_FIRST_PAUSE;
        loop {
            match store
                .begin_login_attempt(&key, address.as_str(), now_millis(), &limits)
                .await?
            {
                LoginAttempt::Allowed(attempt) => {
                    return Ok(LoginGuard {
                        store: store.clone(),
                        attempt,
                    });
                }
                LoginAttempt::Throttled { retry_after_secs } => {
                    return Err(ApiError::TooManyAttempts {
                        retry_after: retry_after_secs,
                    });
                }
                LoginAttempt::Contended => {
                    let wait = jittered(pause);
                    if Instant::now() + wait > give_up_at {
                        return Err(ApiError::Overloaded {
                            retry_after: CONTENTION_RETRY_AFTER_SECS,
                        });
                    }
                    tokio::time::sleep(wait).await;
                    pause = (pause * 2).min(CONTENTION_MAX_PAUSE);
                }
            }
        }
    }
}

/// Between half of `pause` and all of it, at random.
fn jittered(pause: Duration) -> Duration {
    let mut bytes = [0; 2];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator works");
    let half = pause / 2;
    half + half.mul_f64(f64::from(u16::from_le_bytes(bytes)) / f64::from(u16::MAX))
}

impl LoginGuard {
    /// The password was right: clears the username's failures.
    pub async fn succeeded(self) -> Result<(), ApiError> {
        self.store.record_login_success(&self.attempt).await?;
        Ok(())
    }

    /// The password was wrong: the attempt is recorded as a failure.
    pub async fn failed(self) -> Result<(), ApiError> {
        self.store.record_login_failure(&self.attempt).await?;
        Ok(())
    }

    /// The password could not be checked, through no fault of the caller's (the hashing queue
    /// was full): the attempt is forgotten, neither a failure nor in flight, and `error` is
    /// the answer.
    pub async fn withdrawn(self, error: ApiError) -> ApiError {
        match self.store.withdraw_login_attempt(&self.attempt).await {
            Ok(()) => error,
            Err(store_error) => store_error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_are_jittered_between_half_and_all() {
        let pause = Duration::from_millis(80);
        let pauses: Vec<Duration> = (0..200).map(|_| jittered(pause)).collect();
        assert!(
            pauses.iter().all(|wait| (pause / 2..=pause).contains(wait)),
            "{pauses:?}"
        );
        let distinct: std::collections::HashSet<_> = pauses.iter().collect();
        assert!(distinct.len() > 100, "{} distinct pauses", distinct.len());
    }
}
