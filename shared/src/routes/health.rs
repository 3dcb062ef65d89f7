//! `GET /health`: whether the database answers.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::{Success, success_data};
use crate::AppState;
use crate::error::ApiError;

#[derive(Debug, Serialize)]
pub(super) struct Health {
    database: &'static str,
}

pub(super) async fn health(
    State(state): State<AppState>,
) -> Result<Json<Success<Health>>, ApiError> {
    state.store.ping().await?;
    Ok(success_data(None, Health { database: "ok" }))
}
