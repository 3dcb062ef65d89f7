//! Login throttling as handlers use it: [`LoginThrottle::begin`] before a password is checked,
//! and [`LoginGuard::succeeded`] when it was right. The counting itself is the store's (see
//! `store/throttle.rs`).

use std::time::Duration;

use crate::error::ApiError;
use crate::routes::ClientAddress;
use crate::store::{
    LoginAttempt, LoginLimits, PendingLogin, Store, login_username_key, now_millis,
};

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

/// A login attempt that was not throttled. It counts as a failure unless
/// [`LoginGuard::succeeded`] is called: dropping it (a wrong password, or any error on the way)
/// leaves the failure recorded.
#[must_use = "a right password must call `succeeded`, or the attempt stays a failure"]
#[derive(Debug)]
pub struct LoginGuard {
    store: Store,
    attempt: PendingLogin,
}

impl LoginThrottle {
    /// Starts a login attempt of `username` (as the caller wrote it; any string) from
    /// `address`: [`ApiError::TooManyAttempts`] when the username or the address is throttled,
    /// before any password is hashed. Call it after the request's fields are checked, since the
    /// attempt is recorded as a failure from here on.
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
        match store
            .begin_login_attempt(&key, address.as_str(), now_millis(), &limits)
            .await?
        {
            LoginAttempt::Allowed(attempt) => Ok(LoginGuard {
                store: store.clone(),
                attempt,
            }),
            LoginAttempt::Throttled { retry_after_secs } => Err(ApiError::TooManyAttempts {
                retry_after: retry_after_secs,
            }),
        }
    }
}

impl LoginGuard {
    /// The password was right: clears the username's failures.
    pub async fn succeeded(self) -> Result<(), ApiError> {
        self.store.record_login_success(&self.attempt).await?;
        Ok(())
    }

    /// The password was wrong: the attempt stays recorded as a failure. (The same as dropping
    /// the guard; this only says so.)
    pub fn failed(self) {}
}
