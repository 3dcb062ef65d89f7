//! The HTTP surface: one route per endpoint, the fallbacks that keep every answer in the
//! contract's envelope, and the routers the local adapter and each Lambda function serve.

mod auth;
mod data;
mod extract;
mod health;
mod list;
mod sessions;

use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::routing::{MethodRouter, delete, get, post, put};
use axum::{Json, Router};
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;

pub use extract::ClientAddress;

/// Largest request body accepted, in bytes (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The OpenAPI 3 document of the contract, served by the local adapter at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// One endpoint of the API; each is deployed as its own Lambda function.
///
/// This is the one list of endpoints: the routers serve [`Endpoint::ALL`], and a test
/// (`tests/api/endpoints.rs`) fails when a function binary, a route of `template.yaml` or of
/// the `cargo lambda watch` router, or a path of the OpenAPI document is missing for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Register,
    Token,
    Refresh,
    Logout,
    Password,
    Store,
    Retrieve,
    Update,
    Delete,
    List,
}

impl Endpoint {
    /// Every endpoint, in the contract's order.
    pub const ALL: [Endpoint; 10] = [
        Endpoint::Register,
        Endpoint::Token,
        Endpoint::Refresh,
        Endpoint::Logout,
        Endpoint::Password,
        Endpoint::Store,
        Endpoint::Retrieve,
        Endpoint::Update,
        Endpoint::Delete,
        Endpoint::List,
    ];

    /// The HTTP method of the endpoint.
    pub fn method(self) -> &'static str {
        match self {
            Endpoint::Register
            | Endpoint::Token
            | Endpoint::Refresh
            | Endpoint::Logout
            | Endpoint::Password
            | Endpoint::Store => "POST",
            Endpoint::Retrieve | Endpoint::List => "GET",
            Endpoint::Update => "PUT",
            Endpoint::Delete => "DELETE",
        }
    }

    /// The route of the endpoint, in axum's syntax.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Register => "/auth/register",
            Endpoint::Token => "/auth/token",
            Endpoint::Refresh => "/auth/refresh",
            Endpoint::Logout => "/auth/logout",
            Endpoint::Password => "/auth/password",
            Endpoint::Store => "/data/store",
            Endpoint::Retrieve => "/data/retrieve/{key}",
            Endpoint::Update => "/data/update/{key}",
            Endpoint::Delete => "/data/delete/{key}",
            Endpoint::List => "/data/list",
        }
    }

    /// The name of the endpoint's Lambda function, which is also its binary's
    /// (`functions/src/bin/<name>.rs`).
    pub fn function_name(self) -> &'static str {
        match self {
            Endpoint::Register => "auth-register",
            Endpoint::Token => "auth-token",
            Endpoint::Refresh => "auth-refresh",
            Endpoint::Logout => "auth-logout",
            Endpoint::Password => "auth-password",
            Endpoint::Store => "data-store",
            Endpoint::Retrieve => "data-retrieve",
            Endpoint::Update => "data-update",
            Endpoint::Delete => "data-delete",
            Endpoint::List => "data-list",
        }
    }

    fn handler(self) -> MethodRouter<AppState> {
        match self {
            Endpoint::Register => post(auth::register),
            Endpoint::Token => post(auth::token),
            Endpoint::Refresh => post(sessions::refresh),
            Endpoint::Logout => post(sessions::logout),
            Endpoint::Password => post(sessions::change_password),
            Endpoint::Store => post(data::store),
            Endpoint::Retrieve => get(data::retrieve),
            Endpoint::Update => put(data::update),
            Endpoint::Delete => delete(data::delete),
            Endpoint::List => get(list::list),
        }
    }
}

/// The whole API, `GET /health` and `GET /openapi.json`, as the local adapter serves them.
pub fn app(state: AppState) -> Router {
    let router = Endpoint::ALL
        .into_iter()
        .fold(Router::new(), |router, endpoint| {
            router.route(endpoint.path(), endpoint.handler())
        })
        .route("/health", get(health::health))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON) }),
        );
    finish(router, state)
}

/// The one route of `endpoint`, as its Lambda function serves it.
pub fn endpoint_router(endpoint: Endpoint, state: AppState) -> Router {
    finish(
        Router::new().route(endpoint.path(), endpoint.handler()),
        state,
    )
}

/// Adds what every router shares: contract answers for unknown routes and wrong methods, and
/// the body limit.
fn finish(router: Router<AppState>, state: AppState) -> Router {
    router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The contract's success envelope.
#[derive(Debug, Serialize)]
struct Success<T: Serialize> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
}

/// `{"status": "success", "message": …}`.
fn success_message(message: &'static str) -> Json<Success<()>> {
    Json(Success {
        status: "success",
        message: Some(message),
        data: None,
    })
}

/// `{"status": "success", "message": …, "data": …}`, the message where the endpoint has one.
fn success_data<T: Serialize>(message: Option<&'static str>, data: T) -> Json<Success<T>> {
    Json(Success {
        status: "success",
        message,
        data: Some(data),
    })
}
