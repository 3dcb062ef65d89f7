//! Lambda function `db-migrate`: the handler of the template's `Custom::DatabaseSchema`
//! resource, which brings the MySQL schema up to date at deploy time.
//!
//! On MySQL the API functions do not migrate when they start; CloudFormation invokes this
//! function instead, on every deployment that creates or updates the resource:
//!
//! - `Create` and `Update`: load the configuration, wait for the database (or the RDS Proxy in
//!   front of it) to answer, and run the sqlx migrations, which are idempotent. Then, when
//!   `DATABASE_APP_SECRET_ARN` names the API functions' own secret (RDS format: `username`,
//!   `password`), create that user or set its password, and grant it SELECT, INSERT, UPDATE
//!   and DELETE on the schema: the functions never connect as the master user this function
//!   connects as (`DATABASE_SECRET_ARN`).
//! - `Delete`: nothing. The schema goes with the database, whose own deletion policy decides.
//!
//! The answer to CloudFormation is [`functions::custom_resource`]'s business.

// The test build's layout of `main`'s future (the runtime, reqwest and sqlx nested) is deeper
// than rustc's default limit of 128.
#![recursion_limit = "256"]

use std::future::Future;
use std::time::Duration;

use functions::custom_resource::{self, Request, Response, SendError};
use kv_shared::config::{DatabaseConfig, Runtime, SecretsClient};
use kv_shared::store::{APP_USER_PRIVILEGES, AppUser, Backend, Store, StoreError};
use lambda_runtime::{LambdaEvent, service_fn};
use tokio::time::Instant;

/// The physical id of the schema: one per stack, stable across updates, so that an update
/// never makes CloudFormation "replace" (and then delete) the schema resource.
const PHYSICAL_RESOURCE_ID: &str = "kv-schema";

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kv_shared::telemetry::init(Runtime::Lambda);
    let http = &custom_resource::http_client();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Request>| async move {
        let deadline = custom_resource::answer_by(event.context.deadline());
        handle(&event.payload, http, deadline, lambda_store)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}

/// Answers one custom-resource request: applies it before `deadline` with the store
/// `load_store` gives, and sends CloudFormation the outcome.
async fn handle<F, Fut>(
    request: &Request,
    http: &reqwest::Client,
    deadline: Instant,
    load_store: F,
) -> Result<Response, SendError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Target, String>>,
{
    let outcome = apply(request, deadline, load_store).await;
    match &outcome {
        Ok(reason) => tracing::info!(%reason, "succeeded"),
        Err(reason) => tracing::error!(%reason, "failed"),
    }
    custom_resource::respond(http, request, PHYSICAL_RESOURCE_ID, outcome).await
}

/// Does what `request` asks of the schema, before `deadline`: on `Create` and `Update` opens
/// the store `load_store` gives and migrates it; on `Delete` does nothing (and does not call
/// `load_store`). `Ok` and `Err` both carry the reason to report.
async fn apply<F, Fut>(
    request: &Request,
    deadline: Instant,
    load_store: F,
) -> Result<String, String>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Target, String>>,
{
    match request {
        Request::Delete(_) => Ok("Nothing to do: the schema is kept with the database.".to_owned()),
        _ => {
            let work = async {
                let Target { store, app_user } = load_store().await?;
                let mut outcome = migrate_when_ready(&store, deadline).await;
                if let (Ok(migrated), Some(user)) = (&outcome, &app_user) {
                    outcome = match store.ensure_app_user(user).await {
                        Ok(database) => Ok(format!(
                            "{migrated} User {} may {APP_USER_PRIVILEGES} on {database}.",
                            user.username
                        )),
                        Err(error) => Err(format!(
                            "The schema is up to date, but the application user {} could not \
                             be set up: {error}",
                            user.username
                        )),
                    };
                }
                store.close().await;
                outcome
            };
            match tokio::time::timeout_at(deadline, work).await {
                Ok(outcome) => outcome,
                Err(_) => Err("Timed out before the schema was up to date.".to_owned()),
            }
        }
    }
}

/// Waits until the database answers (a new RDS Proxy target can refuse connections for a
/// while after CloudFormation reports it created), then runs the migrations.
async fn migrate_when_ready(store: &Store, deadline: Instant) -> Result<String, String> {
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

/// What a Create or Update works on: the store to migrate, connected as the master user, and
/// the application user to set up in it, if any.
struct Target {
    store: Store,
    app_user: Option<AppUser>,
}

/// The store the configuration `lookup` describes (with `*_ARN` secrets read through
/// `secrets`), without the JWT key the API functions need, and the application user of the
/// secret `DATABASE_APP_SECRET_ARN` names. On Lambda it must be MySQL: an SQLite file there
/// belongs to each function, which migrates it itself.
async fn target_from(
    runtime: Runtime,
    lookup: &dyn Fn(&str) -> Option<String>,
    secrets: Option<&SecretsClient>,
) -> Result<Target, String> {
    let store = store_from(runtime, lookup, secrets).await?;
    let app_user = match lookup("DATABASE_APP_SECRET_ARN").filter(|arn| !arn.trim().is_empty()) {
        None => None,
        Some(_) if store.backend() != Backend::MySql => {
            return Err("DATABASE_APP_SECRET_ARN needs a MySQL database.".to_owned());
        }
        Some(arn) => {
            let secrets = secrets.ok_or("no Secrets Manager client")?;
            let text = secrets
                .get(&arn)
                .await
                .map_err(|error| format!("The configuration is incomplete: {error}"))?;
            Some(app_user_from_secret(&text).ok_or_else(|| {
                format!(
                    "The secret {arn} (DATABASE_APP_SECRET_ARN) is not JSON with a username \
                     and a password."
                )
            })?)
        }
    };
    Ok(Target { store, app_user })
}

/// The user name and password of an RDS-format secret; `None` (the text never shown) if it is
/// not one.
fn app_user_from_secret(text: &str) -> Option<AppUser> {
    #[derive(serde::Deserialize)]
    struct Secret {
        username: String,
        password: String,
    }
    let Secret { username, password } = serde_json::from_str(text).ok()?;
    Some(AppUser { username, password })
}

/// The store the configuration `lookup` describes, as [`target_from`] reads it.
async fn store_from(
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

/// The store and application user of this Lambda function's environment.
async fn lambda_store() -> Result<Target, String> {
    let secrets = SecretsClient::from_env().await;
    target_from(
        Runtime::Lambda,
        &|name| std::env::var(name).ok(),
        Some(&secrets),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tables the migrations create, in byte order.
    const TABLES: [&str; 6] = [
        "_sqlx_migrations",
        "entries",
        "login_failures",
        "refresh_tokens",
        "sessions",
        "users",
    ];
    use std::collections::HashMap;

    use axum::body::Bytes;
    use axum::extract::{OriginalUri, State};
    use axum::http::{HeaderMap, Method};
    use custom_resource::Status;
    use sqlx::{Connection, Executor};
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

    /// A request as CloudFormation sends it, answered at `response_url`.
    fn request(request_type: &str, response_url: &str) -> Request {
        serde_json::from_value(serde_json::json!({
            "RequestType": request_type,
            "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:kv-DbMigrateFunction",
            "ResponseURL": response_url,
            "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/kv/1f2e3d4c",
            "RequestId": test_support::unique_name("request"),
            "LogicalResourceId": "DatabaseSchema",
            "PhysicalResourceId": PHYSICAL_RESOURCE_ID,
            "ResourceType": "Custom::DatabaseSchema",
            "ResourceProperties": {"MigrationsVersion": "20261126000001"},
            "OldResourceProperties": {"MigrationsVersion": "20261126000001"}
        }))
        .unwrap()
    }

    fn far_deadline() -> Instant {
        Instant::now() + Duration::from_secs(600)
    }

    /// The store a local environment with only `DATABASE_URL` set describes.
    async fn local_store(database_url: String) -> Result<Target, String> {
        let lookup = |name: &str| (name == "DATABASE_URL").then(|| database_url.clone());
        target_from(Runtime::Local, &lookup, None).await
    }

    /// The single response the endpoint received, checked for what CloudFormation requires.
    async fn received_response(receiver: &mut mpsc::UnboundedReceiver<Received>) -> Response {
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

    async fn sqlite_tables(url: &str) -> Vec<String> {
        let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name",
        )
        .fetch_all(&mut connection)
        .await
        .unwrap();
        connection.close().await.unwrap();
        names
    }

    #[tokio::test]
    async fn create_and_update_migrate_and_report_success() {
        let (url, mut receiver) = response_endpoint().await;
        let http = reqwest::Client::new();
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}", dir.path().join("kv.db").display());

        let create = request("Create", &url);
        let sent = handle(&create, &http, far_deadline(), || {
            local_store(database_url.clone())
        })
        .await
        .unwrap();
        let received = received_response(&mut receiver).await;
        assert_eq!(received, sent);
        assert_eq!(received.status, Status::Success);
        assert_eq!(
            received.reason.as_deref(),
            Some("The database schema is up to date.")
        );
        assert_eq!(received.physical_resource_id, PHYSICAL_RESOURCE_ID);
        assert_eq!(received.logical_resource_id, "DatabaseSchema");
        let tables = sqlite_tables(&database_url).await;
        assert_eq!(tables, TABLES);

        // An update runs the migrations again: nothing to do, and still a success.
        handle(&request("Update", &url), &http, far_deadline(), || {
            local_store(database_url.clone())
        })
        .await
        .unwrap();
        let received = received_response(&mut receiver).await;
        assert_eq!(received.status, Status::Success, "{received:?}");
        assert_eq!(sqlite_tables(&database_url).await, tables);
    }

    #[tokio::test]
    async fn mysql_is_migrated_and_a_second_run_changes_nothing() {
        let Some(server) = test_support::mysql_server_url("db-migrate on MySQL") else {
            return;
        };
        let name = test_support::create_mysql_database(&server, "kv_test_migrate").await;
        let mut admin = sqlx::MySqlConnection::connect(&server).await.unwrap();
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
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(table_name AS CHAR) COLLATE utf8mb4_bin FROM information_schema.tables \
             WHERE table_schema = ? ORDER BY 1",
        )
        .bind(&name)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        let mut migrated = sqlx::MySqlConnection::connect(&database_url).await.unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&mut migrated)
            .await
            .unwrap();
        migrated.close().await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE `{name}`")))
            .await
            .unwrap();
        assert_eq!(tables, TABLES);
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/mysql"))
            .unwrap()
            .filter(|entry| entry.as_ref().unwrap().path().extension() == Some("sql".as_ref()))
            .count();
        assert_eq!(applied, files as i64, "each migration is applied once");
    }

    /// With an application user's secret, db-migrate creates the user with the DML privileges
    /// only; a second run with a new password (a rotated secret) changes its password and
    /// nothing else.
    #[tokio::test]
    async fn the_application_user_is_created_then_updated_with_dml_privileges_only() {
        let Some(server) = test_support::mysql_server_url("db-migrate's application user") else {
            return;
        };
        let name = test_support::create_mysql_database(&server, "kv_test_app_user").await;
        let username = test_support::unique_name("kvapp");
        let mut admin = sqlx::MySqlConnection::connect(&server).await.unwrap();
        let database_url = format!("{server}/{name}");
        let (url, mut receiver) = response_endpoint().await;
        let http = reqwest::Client::new();
        let port = database_url
            .rsplit(':')
            .next()
            .and_then(|rest| rest.split('/').next())
            .unwrap()
            .to_owned();
        let app_url =
            |password: &str| format!("mysql://{username}:{password}@127.0.0.1:{port}/{name}");

        for (request_type, password) in [("Create", "first-Pa'ss1"), ("Update", "second-Pa$s2")] {
            let target = || async {
                let Target { store, .. } = local_store(database_url.clone()).await?;
                Ok(Target {
                    store,
                    app_user: Some(AppUser {
                        username: username.clone(),
                        password: password.to_owned(),
                    }),
                })
            };
            handle(&request(request_type, &url), &http, far_deadline(), target)
                .await
                .unwrap();
            let received = received_response(&mut receiver).await;
            assert_eq!(received.status, Status::Success, "{received:?}");
            let reason = received.reason.unwrap();
            assert!(
                reason.contains(&username) && !reason.contains(password),
                "{reason}"
            );
        }

        let old = sqlx::MySqlConnection::connect(&app_url("first-Pa%27ss1")).await;
        let mut app = sqlx::MySqlConnection::connect(&app_url("second-Pa%24s2"))
            .await
            .expect("the application user logs in with its new password");
        let grants: Vec<String> = sqlx::query_scalar("SHOW GRANTS")
            .fetch_all(&mut app)
            .await
            .unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&mut app)
            .await
            .unwrap();
        let create = app.execute("CREATE TABLE not_allowed (x INT)").await;
        app.close().await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!("DROP USER '{username}'@'%'")))
            .await
            .unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE `{name}`")))
            .await
            .unwrap();

        assert!(old.is_err(), "the old password no longer works");
        assert_eq!(rows, 0);
        let on_schema: Vec<&String> = grants.iter().filter(|g| g.contains(&name)).collect();
        assert_eq!(on_schema.len(), 1, "{grants:?}");
        assert!(
            on_schema[0].starts_with("GRANT SELECT, INSERT, UPDATE, DELETE ON"),
            "{grants:?}"
        );
        assert!(
            grants
                .iter()
                .all(|g| g.contains(&name) || g.starts_with("GRANT USAGE ON *.*")),
            "no other privilege: {grants:?}"
        );
        let refused = create.expect_err("the application user cannot change the schema");
        let number = refused
            .as_database_error()
            .and_then(|error| error.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
            .map(|error| error.number());
        assert_eq!(number, Some(1142), "{refused}");
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
        let reason = received.reason.unwrap();
        assert!(reason.contains("DATABASE_URL"), "{reason}");
    }

    #[tokio::test]
    async fn a_failing_migration_is_reported_as_failed() {
        // A directory where the database file should be: SQLite cannot open it.
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}", dir.path().display());
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
        let reason = received.reason.unwrap();
        assert!(reason.starts_with("The "), "{reason}");
    }

    #[tokio::test]
    async fn delete_touches_nothing() {
        let (url, mut receiver) = response_endpoint().await;
        handle(
            &request("Delete", &url),
            &reqwest::Client::new(),
            far_deadline(),
            || async { panic!("Delete must not open the database") },
        )
        .await
        .unwrap();
        let received = received_response(&mut receiver).await;
        assert_eq!(received.status, Status::Success);
        assert_eq!(received.physical_resource_id, PHYSICAL_RESOURCE_ID);
    }

    #[tokio::test]
    async fn on_lambda_the_database_must_be_mysql_and_no_jwt_key_is_needed() {
        let lookup = |vars: HashMap<&'static str, &'static str>| {
            move |name: &str| vars.get(name).map(|value| value.to_string())
        };
        let error = store_from(
            Runtime::Lambda,
            &lookup([("DATABASE_URL", "sqlite://kv.db")].into()),
            None,
        )
        .await
        .unwrap_err();
        assert!(error.contains("DATABASE_SECRET_ARN"), "{error}");

        let store = store_from(
            Runtime::Lambda,
            &lookup([("DATABASE_URL", "mysql://kv:pw@127.0.0.1:3306/kv")].into()),
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
        handle(
            &request("Delete", &format!("http://{address}/response")),
            &reqwest::Client::new(),
            far_deadline(),
            || async { panic!("Delete must not open the database") },
        )
        .await
        .unwrap_err();
    }
}
