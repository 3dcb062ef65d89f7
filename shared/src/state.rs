//! What every handler shares: the store, the token keys, the password pool, the quota and the
//! key of list cursors.

use std::sync::Arc;

use crate::auth::{Passwords, Tokens};
use crate::config::Config;
use crate::cursor::ListCursors;
use crate::store::{Quota, Store};

/// The state of one process, built once at start-up (once per cold start on Lambda).
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub tokens: Arc<Tokens>,
    pub passwords: Passwords,
    pub quota: Quota,
    pub cursors: Arc<ListCursors>,
}

impl AppState {
    /// The state `config` describes. Opens no connection: the pool connects on first use.
    pub fn new(config: &Config) -> AppState {
        AppState {
            store: Store::connect_lazy(config.database.clone(), &config.pool),
            tokens: Arc::new(Tokens::new(&config.jwt_secret, config.token_lifetime)),
            passwords: Passwords::per_core(),
            quota: config.quota,
            cursors: Arc::new(ListCursors::new(&config.jwt_secret)),
        }
    }
}
