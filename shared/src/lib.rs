//! The one implementation of the key-value API.
//!
//! Every deployment (the Lambda functions and the local adapter) builds an [`AppState`] from
//! a [`config::Config`] and serves the handlers of [`routes`]; the contract is `CONTRACT.md`.

pub mod auth;
pub mod config;
pub mod cursor;
pub mod entity_tag;
pub mod error;
pub mod lambda;
pub mod routes;
pub mod server;
pub mod state;
pub mod store;
pub mod sweep;
pub mod telemetry;
pub mod validation;

pub use state::AppState;
