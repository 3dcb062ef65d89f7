//! What every handler shares: the store, the token keys, the password pool, the quota, the key
//! of list cursors and the limits of login throttling.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{LoginThrottle, Passwords, Tokens};
use crate::config::Config;
use crate::cursor::ListCursors;
use crate::store::{MIN_REREAD_INTERVAL, Quota, Store};

/// The state of one process, built once at start-up (once per cold start on Lambda).
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub tokens: Arc<Tokens>,
    pub passwords: Passwords,
    pub quota: Quota,
    pub cursors: Arc<ListCursors>,
    pub sessions: SessionSettings,
    pub throttle: LoginThrottle,
}

/// How long refresh tokens live, and how soon a used one may come back without ending its
/// session.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    pub refresh_lifetime: Duration,
    pub reuse_grace: Duration,
}

impl AppState {
    /// The state `config` describes. Opens no connection: the pool connects on first use.
    /// Credentials from a secret are read again when MySQL refuses them (a rotation).
    pub fn new(config: &Config) -> AppState {
        let mut store = Store::connect_lazy(config.database.clone(), &config.pool);
        if let Some(secret) = &config.database_secret {
            store = store.refreshing_credentials(Arc::new(secret.clone()), MIN_REREAD_INTERVAL);
        }
        AppState {
            store,
            tokens: Arc::new(Tokens::new(&config.jwt_keys, config.token_lifetime)),
            passwords: Passwords::per_core(config.password_queue_max),
            quota: config.quota,
            // Keyed by the signing key: a rotation voids the cursors of the previous one (the
            // client lists again from the start), which live no longer than a listing.
            cursors: Arc::new(ListCursors::new(&config.jwt_keys[0])),
            sessions: SessionSettings {
                refresh_lifetime: config.refresh_lifetime,
                reuse_grace: config.refresh_reuse_grace,
            },
            throttle: config.login_throttle,
        }
    }
}
