//! Lambda function `db-migrate`: the handler of the template's `Custom::DatabaseSchema`
//! resource, which brings the MySQL schema up to date at deploy time.
//!
//! On MySQL the API functions do not migrate when they start; CloudFormation invokes this
//! function instead, on every deployment that creates or updates the resource:
//!
//! - `Create` and `Update`: load the configuration, wait for the database (or the RDS Proxy in
//!   front of it) to answer, and run the sqlx migrations, which are idempotent.
//! - `Delete`: nothing. The schema goes with the database, whose own deletion policy decides.
//!
//! Whatever happens, the function PUTs a custom-resource response to the event's `ResponseURL`
//! (with an empty `Content-Type`, as the pre-signed URL requires) before its own deadline, so a
//! failure makes the stack roll back instead of waiting an hour for an answer.

use std::future::Future;
use std::time::{Duration, SystemTime};

use kv_shared::config::{DatabaseConfig, Runtime, SecretsClient};
use kv_shared::store::{Backend, Store, StoreError};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// The physical id of the schema: one per stack, stable across updates, so that an update
/// never makes CloudFormation "replace" (and then delete) the schema resource.
pub const PHYSICAL_RESOURCE_ID: &str = "kv-schema";

/// Longest `Reason` sent back: a whole response must stay under CloudFormation's 4,096 bytes.
const MAX_REASON_BYTES: usize = 1000;

/// Time kept back from the Lambda deadline to report a failure before the function is killed:
/// room for every attempt of [`send`].
const RESPONSE_MARGIN: Duration = Duration::from_secs(40);

/// How long one attempt to PUT the response may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A CloudFormation custom-resource request, as far as this function reads it. Every field is
/// optional here so that an odd request still gets an answer rather than a hanging stack.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CustomResourceRequest {
    pub request_type: String,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    pub physical_resource_id: Option<String>,
    pub resource_type: String,
}

/// Whether the request succeeded, as CloudFormation spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Success,
    Failed,
}

/// The body PUT to the request's `ResponseURL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceResponse {
    pub status: Status,
    pub reason: String,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
}

/// The response to `request`, given what the schema step did.
pub fn response(
    request: &CustomResourceRequest,
    outcome: Result<String, String>,
) -> CustomResourceResponse {
    let (status, reason) = match outcome {
        Ok(reason) => (Status::Success, reason),
        Err(reason) => (Status::Failed, reason),
    };
    CustomResourceResponse {
        status,
        reason: truncate(&reason, MAX_REASON_BYTES),
        physical_resource_id: request
            .physical_resource_id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| PHYSICAL_RESOURCE_ID.to_owned()),
        stack_id: request.stack_id.clone(),
        request_id: request.request_id.clone(),
        logical_resource_id: request.logical_resource_id.clone(),
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Does what `request_type` asks of the schema, before `deadline`: on `Create` and `Update`
/// opens the store `load_store` gives and migrates it; on `Delete` does nothing (and does not
/// call `load_store`). `Ok` and `Err` both carry the reason to report.
pub async fn apply<F, Fut>(
    request_type: &str,
    deadline: Instant,
    load_store: F,
) -> Result<String, String>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Store, String>>,
{
    match request_type {
        "Delete" => Ok("Nothing to do: the schema is kept with the database.".to_owned()),
        "Create" | "Update" => {
            let work = async {
                let store = load_store().await?;
                let migrated = migrate(&store, deadline).await;
                store.close().await;
                migrated
            };
            match tokio::time::timeout_at(deadline, work).await {
                Ok(outcome) => outcome,
                Err(_) => Err("Timed out before the schema was up to date.".to_owned()),
            }
        }
        other => Err(format!("Unknown RequestType {other:?}.")),
    }
}

/// Waits until the database answers (a new RDS Proxy target can refuse connections for a
/// while after CloudFormation reports it created), then runs the migrations.
async fn migrate(store: &Store, deadline: Instant) -> Result<String, String> {
    let mut pause = Duration::from_secs(1);
    loop {
        match store.ping().await {
            Ok(()) => break,
            Err(StoreError::Unavailable(error)) if Instant::now() + pause < deadline => {
                tracing::warn!(%error, "the database does not answer yet; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(15));
            }
            Err(error) => return Err(format!("The database does not answer: {error}")),
        }
    }
    store
        .migrate()
        .await
        .map_err(|error| format!("The migrations failed: {error}"))?;
    Ok("The database schema is up to date.".to_owned())
}

/// The store the configuration `lookup` describes (with `*_ARN` secrets read through
/// `secrets`), without the JWT key the API functions need. On Lambda it must be MySQL: an
/// SQLite file there belongs to each function, which migrates it itself.
pub async fn store_from(
    runtime: Runtime,
    lookup: &dyn Fn(&str) -> Option<String>,
    secrets: Option<&SecretsClient>,
) -> Result<Store, String> {
    let config = DatabaseConfig::from_sources(runtime, lookup, secrets)
        .await
        .map_err(|error| format!("The configuration is incomplete: {error}"))?;
    if runtime == Runtime::Lambda && config.database.backend() != Backend::MySql {
        return Err(
            "DATABASE_SECRET_ARN is not set: db-migrate migrates a MySQL database, \
                    described by DATABASE_SECRET_ARN and DATABASE_HOST."
                .to_owned(),
        );
    }
    Ok(Store::connect_lazy(config.database, &config.pool))
}

/// The store of this Lambda function's environment.
async fn lambda_store() -> Result<Store, String> {
    let secrets = SecretsClient::from_env().await;
    store_from(
        Runtime::Lambda,
        &|name| std::env::var(name).ok(),
        Some(&secrets),
    )
    .await
}

/// Why a request could not be answered.
#[derive(Debug)]
pub enum HandlerError {
    /// The event has no `ResponseURL`: it does not come from CloudFormation.
    NoResponseUrl,
    /// CloudFormation's pre-signed URL did not accept the response.
    Send(String),
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandlerError::NoResponseUrl => f.write_str(
                "the event has no ResponseURL: not a CloudFormation custom-resource request",
            ),
            HandlerError::Send(reason) => write!(f, "could not send the response: {reason}"),
        }
    }
}

impl std::error::Error for HandlerError {}

/// Answers one custom-resource request: applies it before `deadline` with the store
/// `load_store` gives, and PUTs the response to its `ResponseURL` with `http`.
pub async fn handle<F, Fut>(
    request: &CustomResourceRequest,
    http: &reqwest::Client,
    deadline: Instant,
    load_store: F,
) -> Result<CustomResourceResponse, HandlerError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Store, String>>,
{
    if request.response_url.is_empty() {
        return Err(HandlerError::NoResponseUrl);
    }
    tracing::info!(
        request_type = %request.request_type,
        stack_id = %request.stack_id,
        logical_resource_id = %request.logical_resource_id,
        "custom-resource request"
    );
    let outcome = apply(&request.request_type, deadline, load_store).await;
    match &outcome {
        Ok(reason) => tracing::info!(%reason, "succeeded"),
        Err(reason) => tracing::error!(%reason, "failed"),
    }
    let response = response(request, outcome);
    send(http, &request.response_url, &response).await?;
    Ok(response)
}

/// PUTs `response` to CloudFormation's pre-signed `url`, trying a few times.
pub async fn send(
    http: &reqwest::Client,
    url: &str,
    response: &CustomResourceResponse,
) -> Result<(), HandlerError> {
    let body =
        serde_json::to_vec(response).map_err(|error| HandlerError::Send(error.to_string()))?;
    let mut attempt = 1;
    loop {
        let sent = http
            .put(url)
            // The URL is signed for an empty content type: any other value is refused.
            .header(reqwest::header::CONTENT_TYPE, "")
            .body(body.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match sent {
            Ok(_) => return Ok(()),
            Err(error) if attempt < 3 => {
                tracing::warn!(error = %error.without_url(), attempt, "could not send the response; retrying");
                tokio::time::sleep(Duration::from_secs(attempt)).await;
                attempt += 1;
            }
            // The URL is a bearer credential for the response: keep it out of the logs.
            Err(error) => return Err(HandlerError::Send(error.without_url().to_string())),
        }
    }
}

/// The instant to have answered by: the invocation's deadline less a margin to report in.
fn answer_by(deadline: SystemTime) -> Instant {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(RESPONSE_MARGIN);
    Instant::now() + left.max(Duration::from_secs(1))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kv_shared::telemetry::init(Runtime::Lambda);
    let http = reqwest::Client::builder().timeout(SEND_TIMEOUT).build()?;
    let http = &http;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<CustomResourceRequest>| async move {
            let deadline = answer_by(event.context.deadline());
            handle(&event.payload, http, deadline, lambda_store)
                .await
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Bytes;
    use axum::extract::{OriginalUri, State};
    use axum::http::{HeaderMap, Method};
    use tokio::sync::mpsc;

    /// One request the fake CloudFormation endpoint received.
    #[derive(Debug)]
    struct Received {
        method: Method,
        uri: String,
        headers: HeaderMap,
        body: Bytes,
    }

    /// A local stand-in for CloudFormation's pre-signed S3 URL: records every request.
    async fn response_endpoint() -> (String, mpsc::UnboundedReceiver<Received>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(
            |State(sender): State<mpsc::UnboundedSender<Received>>,
             method: Method,
             OriginalUri(uri): OriginalUri,
             headers: HeaderMap,
             body: Bytes| async move {
                let _ = sender.send(Received {
                    method,
                    uri: uri.to_string(),
                    headers,
                    body,
                });
                ""
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app.with_state(sender)).await.unwrap();
        });
        (
            format!("http://{address}/cloudformation-response?X-Amz-Signature=abc%2Fdef"),
            receiver,
        )
    }

    /// A fresh SQLite file path under the system's temporary directory.
    fn temp_database() -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "db-migrate-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("kv.db")
    }

    fn request(request_type: &str, response_url: &str) -> CustomResourceRequest {
        let event = serde_json::json!({
            "RequestType": request_type,
            "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:kv-DbMigrateFunction",
            "ResponseURL": response_url,
            "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/kv/1f2e3d4c",
            "RequestId": "5d478078-13e9-baf0-464a-7ef285ecc786",
            "LogicalResourceId": "DatabaseSchema",
            "ResourceType": "Custom::DatabaseSchema",
            "ResourceProperties": {
                "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:kv-DbMigrateFunction",
                "MigrationsVersion": "20261126000001"
            }
        });
        serde_json::from_value(event).unwrap()
    }

    fn far_deadline() -> Instant {
        Instant::now() + Duration::from_secs(600)
    }

    /// The store a local environment with only `DATABASE_URL` set describes.
    async fn local_store(database_url: String) -> Result<Store, String> {
        let lookup = |name: &str| (name == "DATABASE_URL").then(|| database_url.clone());
        store_from(Runtime::Local, &lookup, None).await
    }

    /// The single response the endpoint received, checked for what CloudFormation requires.
    async fn received_response(
        receiver: &mut mpsc::UnboundedReceiver<Received>,
    ) -> CustomResourceResponse {
        let received = receiver.recv().await.expect("a response was PUT");
        assert_eq!(received.method, Method::PUT);
        assert_eq!(
            received.uri, "/cloudformation-response?X-Amz-Signature=abc%2Fdef",
            "the pre-signed URL must be used as given"
        );
        assert_eq!(
            received
                .headers
                .get("content-type")
                .map(|value| value.as_bytes()),
            Some(&b""[..]),
            "the content type must be present and empty"
        );
        assert!(receiver.try_recv().is_err(), "exactly one response");
        serde_json::from_slice(&received.body).unwrap()
    }

    async fn table_names(path: &std::path::Path) -> Vec<String> {
        use sqlx::Connection;
        let mut connection =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
        let names: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(&mut connection)
                .await
                .unwrap();
        connection.close().await.unwrap();
        names.into_iter().map(|(name,)| name).collect()
    }

    #[tokio::test]
    async fn create_and_update_migrate_and_report_success() {
        let (url, mut receiver) = response_endpoint().await;
        let http = reqwest::Client::new();
        let path = temp_database();
        let database_url = format!("sqlite://{}", path.display());

        let create = request("Create", &url);
        let sent = handle(&create, &http, far_deadline(), || {
            local_store(database_url.clone())
        })
        .await
        .unwrap();
        let received = received_response(&mut receiver).await;
        assert_eq!(received, sent);
        assert_eq!(
            received,
            CustomResourceResponse {
                status: Status::Success,
                reason: "The database schema is up to date.".into(),
                physical_resource_id: PHYSICAL_RESOURCE_ID.into(),
                stack_id: create.stack_id.clone(),
                request_id: create.request_id.clone(),
                logical_resource_id: "DatabaseSchema".into(),
            }
        );
        let tables = table_names(&path).await;
        for table in ["_sqlx_migrations", "entries", "users"] {
            assert!(
                tables.iter().any(|name| name == table),
                "{table} in {tables:?}"
            );
        }

        // An update runs the migrations again: nothing to do, and still a success.
        let mut update = request("Update", &url);
        update.physical_resource_id = Some(PHYSICAL_RESOURCE_ID.into());
        handle(&update, &http, far_deadline(), || {
            local_store(database_url.clone())
        })
        .await
        .unwrap();
        let received = received_response(&mut receiver).await;
        assert_eq!(received.status, Status::Success, "{received:?}");
        assert_eq!(received.physical_resource_id, PHYSICAL_RESOURCE_ID);
        assert_eq!(received.request_id, update.request_id);
        assert_eq!(table_names(&path).await, tables);

        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// The server-level URL of the MySQL test server `scripts/test.sh` starts: `None` (the test
    /// skips) when it is not set, except under CI, where the MySQL tests must run.
    fn mysql_server_url() -> Option<String> {
        match std::env::var("KV_TEST_MYSQL_URL") {
            Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_owned()),
            _ if matches!(
                std::env::var("CI").as_deref(),
                Ok("true" | "TRUE" | "True" | "1")
            ) =>
            {
                panic!("KV_TEST_MYSQL_URL is not set, and under CI the MySQL tests must run")
            }
            _ => {
                eprintln!("skipped: KV_TEST_MYSQL_URL is not set (./scripts/test.sh sets it)");
                None
            }
        }
    }

    #[tokio::test]
    async fn mysql_is_migrated_and_a_second_run_changes_nothing() {
        use sqlx::{AssertSqlSafe, Connection, Executor};
        let Some(server) = mysql_server_url() else {
            return;
        };
        let name = format!(
            "kv_test_migrate_{}_{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let mut admin = sqlx::MySqlConnection::connect(&server).await.unwrap();
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
            .await
            .unwrap();
        let database_url = format!("{server}/{name}");
        let (url, mut receiver) = response_endpoint().await;
        let http = reqwest::Client::new();

        for request_type in ["Create", "Update"] {
            handle(&request(request_type, &url), &http, far_deadline(), || {
                local_store(database_url.clone())
            })
            .await
            .unwrap();
            let received = received_response(&mut receiver).await;
            assert_eq!(
                received.status,
                Status::Success,
                "{request_type}: {received:?}"
            );
        }
        // Sorted bytewise: since sqlx 0.9 the connection's collation is the server's default.
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT CAST(table_name AS CHAR) COLLATE utf8mb4_bin FROM information_schema.tables \
             WHERE table_schema = ? ORDER BY 1",
        )
        .bind(&name)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        let migrations: (i64,) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM `{name}`._sqlx_migrations"
        )))
        .fetch_one(&mut admin)
        .await
        .unwrap();
        admin
            .execute(AssertSqlSafe(format!("DROP DATABASE `{name}`")))
            .await
            .unwrap();
        let tables: Vec<String> = tables.into_iter().map(|(table,)| table).collect();
        assert_eq!(tables, ["_sqlx_migrations", "entries", "users"]);
        let files = std::fs::read_dir(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../migrations/mysql"
        ))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().extension() == Some("sql".as_ref()))
        .count();
        assert_eq!(migrations.0, files as i64, "each migration is applied once");
    }

    #[tokio::test]
    async fn a_bad_database_url_is_reported_as_failed() {
        let (url, mut receiver) = response_endpoint().await;
        let create = request("Create", &url);
        let sent = handle(&create, &reqwest::Client::new(), far_deadline(), || {
            local_store("postgres://kv@127.0.0.1/kv".into())
        })
        .await
        .unwrap();
        let received = received_response(&mut receiver).await;
        assert_eq!(received, sent);
        assert_eq!(received.status, Status::Failed);
        assert!(
            received.reason.contains("DATABASE_URL"),
            "{}",
            received.reason
        );
        assert_eq!(received.physical_resource_id, PHYSICAL_RESOURCE_ID);
        assert_eq!(received.stack_id, create.stack_id);
        assert_eq!(received.request_id, create.request_id);
        assert_eq!(received.logical_resource_id, create.logical_resource_id);
    }

    #[tokio::test]
    async fn a_failing_migration_is_reported_as_failed() {
        // A directory where the database file should be: SQLite cannot open it.
        let path = temp_database();
        std::fs::create_dir_all(&path).unwrap();
        let database_url = format!("sqlite://{}", path.display());
        let (url, mut receiver) = response_endpoint().await;
        handle(
            &request("Update", &url),
            &reqwest::Client::new(),
            far_deadline(),
            || local_store(database_url.clone()),
        )
        .await
        .unwrap();
        let received = received_response(&mut receiver).await;
        assert_eq!(received.status, Status::Failed, "{received:?}");
        assert!(received.reason.starts_with("The "), "{}", received.reason);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn delete_touches_nothing_and_keeps_the_physical_id() {
        let (url, mut receiver) = response_endpoint().await;
        let mut delete = request("Delete", &url);
        delete.physical_resource_id = Some("kv-schema-from-an-older-version".into());
        handle(&delete, &reqwest::Client::new(), far_deadline(), || async {
            panic!("Delete must not open the database")
        })
        .await
        .unwrap();
        let received = received_response(&mut receiver).await;
        assert_eq!(received.status, Status::Success);
        assert_eq!(
            received.physical_resource_id,
            "kv-schema-from-an-older-version"
        );
    }

    #[tokio::test]
    async fn an_unknown_request_type_is_reported_as_failed() {
        let (url, mut receiver) = response_endpoint().await;
        handle(
            &request("Upsert", &url),
            &reqwest::Client::new(),
            far_deadline(),
            || async { panic!("an unknown request must not open the database") },
        )
        .await
        .unwrap();
        let received = received_response(&mut receiver).await;
        assert_eq!(received.status, Status::Failed);
        assert!(received.reason.contains("Upsert"), "{}", received.reason);
    }

    #[tokio::test]
    async fn on_lambda_the_database_must_be_mysql_and_no_jwt_key_is_needed() {
        let vars: HashMap<&str, &str> = [("DATABASE_URL", "sqlite://kv.db")].into();
        let error = store_from(
            Runtime::Lambda,
            &|name| vars.get(name).map(|v| v.to_string()),
            None,
        )
        .await
        .unwrap_err();
        assert!(error.contains("DATABASE_SECRET_ARN"), "{error}");

        let vars: HashMap<&str, &str> =
            [("DATABASE_URL", "mysql://kv:pw@127.0.0.1:3306/kv")].into();
        let store = store_from(
            Runtime::Lambda,
            &|name| vars.get(name).map(|v| v.to_string()),
            None,
        )
        .await
        .expect("no JWT_SECRET or JWT_SECRET_ARN is needed");
        assert_eq!(store.backend(), Backend::MySql);
    }

    #[tokio::test]
    async fn an_unreachable_response_url_is_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let error = handle(
            &request("Delete", &format!("http://{address}/response")),
            &reqwest::Client::new(),
            far_deadline(),
            || async { panic!("Delete must not open the database") },
        )
        .await
        .unwrap_err();
        assert!(matches!(error, HandlerError::Send(_)), "{error}");
    }

    #[tokio::test]
    async fn an_event_without_response_url_is_refused() {
        let error = handle(
            &CustomResourceRequest::default(),
            &reqwest::Client::new(),
            far_deadline(),
            || async { panic!("no request, no database") },
        )
        .await
        .unwrap_err();
        assert!(matches!(error, HandlerError::NoResponseUrl));
    }

    #[test]
    fn the_response_has_cloudformation_field_names() {
        let request = request("Create", "https://example.com/x");
        let json = serde_json::to_value(response(&request, Err("é".repeat(2000)))).unwrap();
        assert_eq!(json["Status"], "FAILED");
        assert_eq!(json["PhysicalResourceId"], PHYSICAL_RESOURCE_ID);
        assert_eq!(json["StackId"], request.stack_id);
        assert_eq!(json["RequestId"], request.request_id);
        assert_eq!(json["LogicalResourceId"], "DatabaseSchema");
        let reason = json["Reason"].as_str().unwrap();
        assert!(
            reason.len() <= MAX_REASON_BYTES && reason.ends_with("..."),
            "{reason}"
        );
    }
}
