//! Lambda function `data-sweep`: removes expired entries, a batch at a time, on the EventBridge
//! schedule of `template.yaml` (every minute). Expired entries are already absent for every
//! endpoint; the sweep frees their space and stops counting them against their users' quotas.
//!
//! Each invocation sweeps until nothing expired is left or its time is nearly up, and answers
//! what it removed: `{"deleted": 1500, "batches": 4, "sessions_removed": 12,
//! "login_failures_removed": 3}`. Finished sessions and old failed logins (older than
//! `LOGIN_WINDOW_SECONDS`, as the login functions are configured) go in the same run.

use std::sync::Arc;
use std::time::Duration;

use kv_shared::config::{DatabaseConfig, Runtime, SecretsClient};
use kv_shared::store::{Backend, MIN_REREAD_INTERVAL, Store, StoreError};
use kv_shared::sweep::{SweepReport, sweep_expired};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Deserialize;
use tokio::time::Instant;

/// What this function reads of EventBridge's "Scheduled Event" (aws_lambda_events'
/// `CloudWatchEvent` would bring chrono in for these two fields).
#[derive(Debug, Deserialize)]
struct ScheduledEvent {
    #[serde(rename = "detail-type")]
    detail_type: String,
    /// When the schedule fired, as EventBridge writes it (RFC 3339).
    time: String,
}

/// Time left for the answer after the last batch.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kv_shared::telemetry::init(Runtime::Lambda);
    let secrets = match std::env::var_os("DATABASE_SECRET_ARN") {
        Some(_) => Some(SecretsClient::from_env().await),
        None => None,
    };
    let config = DatabaseConfig::from_sources(
        Runtime::Lambda,
        &|name| std::env::var(name).ok(),
        secrets.as_ref(),
    )
    .await
    .inspect_err(|error| {
        tracing::error!(%error, "refusing to start: the configuration is incomplete");
    })?;
    let mut store = Store::connect_lazy(config.database, &config.pool);
    if let Some(secret) = config.database_secret {
        // A rotated secret is read again when MySQL refuses the old password.
        store = store.refreshing_credentials(Arc::new(secret), MIN_REREAD_INTERVAL);
    }
    // An SQLite file (cargo lambda watch) belongs to the function, which migrates it itself;
    // MySQL is migrated by db-migrate at deploy time.
    if store.backend() == Backend::Sqlite {
        store.migrate().await?;
    }
    let login_window = kv_shared::config::login_window(&|name| std::env::var(name).ok())?;
    let store = &store;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ScheduledEvent>| async move {
            let deadline = functions::stop_before(event.context.deadline(), ANSWER_MARGIN);
            handle(store, &event.payload, deadline, login_window)
                .await
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}

/// Sweeps once for a scheduled event.
async fn handle(
    store: &Store,
    event: &ScheduledEvent,
    deadline: Instant,
    login_window: Duration,
) -> Result<SweepReport, StoreError> {
    let report = sweep_expired(store, deadline, login_window).await;
    match &report {
        Ok(report) => tracing::info!(
            deleted = report.deleted,
            batches = report.batches,
            sessions_removed = report.sessions_removed,
            login_failures_removed = report.login_failures_removed,
            event = %event.detail_type,
            scheduled = %event.time,
            "swept expired entries"
        ),
        Err(error) => tracing::error!(%error, "the sweep failed"),
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default throttling window.
    const WINDOW: Duration = Duration::from_secs(900);

    use kv_shared::store::{ConnectOptions, PoolSettings};
    use sqlx::{Connection, Executor, SqliteConnection};

    /// The scheduled event EventBridge sends, as committed in the fixtures.
    fn scheduled_event() -> ScheduledEvent {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/events/eventbridge-scheduled.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture exists"))
            .expect("a scheduled event")
    }

    /// A migrated SQLite store whose one user holds 1,200 entries that expired long ago and one
    /// (`kept1`) that never expires, each of 7 bytes, counted; and a connection to its file.
    async fn store_with_expired_entries(dir: &tempfile::TempDir) -> (Store, SqliteConnection) {
        let url = format!("sqlite://{}", dir.path().join("kv.db").display());
        let store = Store::connect_lazy(
            ConnectOptions::from_url(&url).unwrap(),
            &PoolSettings {
                max_connections: 2,
                max_idle_connections: 2,
                acquire_timeout: Duration::from_secs(3),
            },
        );
        store.migrate().await.unwrap();
        let mut db = SqliteConnection::connect(&url).await.unwrap();
        db.execute(
            "INSERT INTO users (username, username_key, email, password_hash, full_name, gender, \
                 entry_count, entry_bytes) \
             VALUES ('sweep', 'sweep', 's@example.com', 'x', 'S', 'f', 1201, 1201 * 7); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200) \
             INSERT INTO entries (user_id, entry_key, value, value_size, etag, expires_at) \
             SELECT 1, printf('k%04d', i), 'vv', 2, 'tag', 1000 FROM n; \
             INSERT INTO entries (user_id, entry_key, value, value_size, etag, expires_at) \
             VALUES (1, 'kept1', 'vv', 2, 'tag', NULL);",
        )
        .await
        .unwrap();
        (store, db)
    }

    #[tokio::test]
    async fn a_scheduled_event_sweeps_every_expired_entry_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut db) = store_with_expired_entries(&dir).await;
        let event = scheduled_event();
        assert_eq!(event.detail_type, "Scheduled Event");
        let in_a_minute = || Instant::now() + Duration::from_secs(60);

        let report = handle(&store, &event, in_a_minute(), WINDOW).await.unwrap();

        assert_eq!(
            report,
            SweepReport {
                deleted: 1200,
                batches: 3,
                sessions_removed: 0,
                login_failures_removed: 0
            }
        );
        let (entries, count, bytes): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM entries), entry_count, entry_bytes FROM users",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        assert_eq!((entries, count, bytes), (1, 1, 7));
        let again = handle(&store, &event, in_a_minute(), WINDOW).await.unwrap();
        assert_eq!(again, SweepReport::default());
    }

    #[tokio::test]
    async fn a_sweep_past_its_deadline_stops_after_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _db) = store_with_expired_entries(&dir).await;
        let report = handle(&store, &scheduled_event(), Instant::now(), WINDOW)
            .await
            .unwrap();
        assert_eq!(
            report,
            SweepReport {
                deleted: 500,
                batches: 1,
                sessions_removed: 0,
                login_failures_removed: 0
            }
        );
    }
}
