//! A rotated database secret, on the real function binaries under a Runtime API emulator,
//! against MariaDB (`KV_TEST_MYSQL_URL`) and the Secrets Manager emulator of `scripts/moto.sh`
//! (`KV_TEST_SECRETS_ENDPOINT`); skipped without them locally, a failure without them under CI.
//!
//! As on AWS: db-migrate, connected as the master user (the test server's `kv`, through its
//! secret), migrates a database of the test's own and creates the application user of a second
//! secret, which every API function then connects as. A user registers, logs in and stores a
//! value, and a `data-retrieve` process stays warm while the application user's password
//! changes in the database and in its secret (a rotation): its requests answer 200 again,
//! never 500. Then the password changes in the database before the secret holds it: 503 with
//! `Retry-After` and the contract's envelope, with one read of the secret for the whole storm,
//! and 200 once the secret holds the new password.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::put;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Executor, MySqlConnection};
use tokio::sync::mpsc;

mod support;

use support::Function;

const JWT_SECRET: &str = "the-credentials-test-s-jwt-key-of-32-bytes";
const REGION: &str = "us-east-1";
/// The line a function logs each time it reads its database secret again.
const REREAD_LINE: &str = "the database refused the credentials: re-reading them";
/// How long a connection may stay idle before the pool pings it (store/pool.rs), with margin:
/// after this, a connection killed meanwhile is noticed and replaced by a new one.
const PAST_IDLE_PING: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_database_secret_is_read_again_without_a_500() {
    let test = "credentials::a_rotated_database_secret_is_read_again_without_a_500";
    let (Some(server), Some(endpoint)) = (
        test_support::mysql_server_url(test),
        test_support::secrets_endpoint(test),
    ) else {
        return;
    };
    let server = TestServer::parse(&server);
    let secrets = secrets_client(&endpoint);
    let database = test_support::create_mysql_database(&server.url, "kv_rotation").await;
    let app_user = test_support::unique_name("kvrot");
    let mut admin = MySqlConnection::connect(&server.url).await.unwrap();

    let secret = |username: &str, password: &str| {
        json!({"engine": "mysql", "username": username, "password": password,
               "host": server.host, "port": server.port, "dbname": database})
        .to_string()
    };
    let master_arn = create_secret(
        &secrets,
        "kv-test/master",
        &secret(&server.user, &server.password),
    )
    .await;
    let app_arn = create_secret(
        &secrets,
        "kv-test/app",
        &secret(&app_user, "first-Passw0rd"),
    )
    .await;
    let aws = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        // The test server speaks no TLS; on AWS the secret's connections verify the server.
        ("DATABASE_SSL_MODE", "disabled"),
        ("RUST_LOG", "info"),
    ];

    // db-migrate, as the master user: the schema, and the application user.
    let (response_url, mut cloudformation) = response_endpoint().await;
    let mut migrate_env = aws.to_vec();
    migrate_env.extend([
        ("DATABASE_SECRET_ARN", master_arn.as_str()),
        ("DATABASE_APP_SECRET_ARN", app_arn.as_str()),
    ]);
    let migrate = Function::start("db-migrate", &migrate_env).await;
    let create = json!({"RequestType": "Create", "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/kv/1",
        "RequestId": "rotation-create", "LogicalResourceId": "DatabaseSchema",
        "ResourceType": "Custom::DatabaseSchema",
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:db-migrate",
        "ResourceProperties": {}});
    migrate
        .invoke(&test_support::unique_name("invocation"), create)
        .await;
    let answer = tokio::time::timeout(Duration::from_secs(60), cloudformation.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("db-migrate sent no answer:\n{}", migrate.output()));
    assert_eq!(
        answer["Status"],
        "SUCCESS",
        "{answer}\n{}",
        migrate.output()
    );
    migrate.stop();

    // The API functions connect as the application user.
    let mut app_env = aws.to_vec();
    app_env.extend([
        ("DATABASE_SECRET_ARN", app_arn.as_str()),
        ("JWT_SECRET", JWT_SECRET),
    ]);
    let once = async |name: &str, event: Value| {
        let function = Function::start(name, &app_env).await;
        let answer = call(&function, event).await;
        assert_eq!(
            answer.status,
            200,
            "{name}: {answer:?}\n{}",
            function.output()
        );
        function.stop();
        answer
    };
    once("auth-register", fixture("register.json", "")).await;
    let login = once("auth-token", fixture("token.json", "")).await;
    let token = login.body["data"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    once("data-store", fixture("store.json", &token)).await;

    let retrieve = Function::start("data-retrieve", &app_env).await;
    let answer = call(&retrieve, fixture("retrieve.json", &token)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["data"]["valueN"], "hello");
    assert_eq!(retrieve.output().matches(REREAD_LINE).count(), 0);

    // A rotation: the password changes in the database and in the secret. The warm function's
    // connection ends (as the server's or the proxy's idle timeout ends it), so its next
    // request needs a new connection.
    set_password(&mut admin, &app_user, "second-Passw0rd").await;
    put_secret(&secrets, &app_arn, &secret(&app_user, "second-Passw0rd")).await;
    kill_connections_of(&mut admin, &app_user).await;
    tokio::time::sleep(PAST_IDLE_PING).await;
    let after_rotation = [
        call(&retrieve, fixture("retrieve.json", &token)).await,
        call(&retrieve, fixture("retrieve.json", &token)).await,
    ];
    let statuses: Vec<u16> = after_rotation.iter().map(|answer| answer.status).collect();
    // What happens: the refused connection reads the secret again and the same request gets
    // its answer with the new password.
    assert_eq!(
        statuses,
        [200, 200],
        "{after_rotation:?}\n{}",
        retrieve.output()
    );
    assert_eq!(after_rotation[0].body["data"]["valueN"], "hello");
    assert_eq!(
        retrieve.output().matches(REREAD_LINE).count(),
        1,
        "{}",
        retrieve.output()
    );

    // The password changes in the database before the secret holds it (a rotation half-way):
    // a storm of requests reads the secret once and answers 503 with Retry-After...
    set_password(&mut admin, &app_user, "third-Passw0rd").await;
    kill_connections_of(&mut admin, &app_user).await;
    tokio::time::sleep(PAST_IDLE_PING).await;
    let storm_started = Instant::now();
    let mut storm = Vec::new();
    for _ in 0..4 {
        storm.push(call(&retrieve, fixture("retrieve.json", &token)).await);
    }
    let storm_took = storm_started.elapsed();
    for answer in &storm {
        assert_eq!(answer.status, 503, "{answer:?}\n{}", retrieve.output());
        assert_eq!(answer.body["status"], "error");
        assert_eq!(answer.body["code"], "SERVICE_UNAVAILABLE");
        assert!(answer.header("retry-after").is_some(), "{answer:?}");
    }
    let rereads = retrieve.output().matches(REREAD_LINE).count() - 1;
    if storm_took < kv_shared::store::MIN_REREAD_INTERVAL {
        assert_eq!(rereads, 1, "one read for the storm:\n{}", retrieve.output());
    } else {
        // A machine so slow that the storm outlasted the interval: still not one per request.
        assert!(rereads < storm.len(), "{}", retrieve.output());
    }
    // ...and answers 200 once the secret holds the new password and the interval has passed.
    put_secret(&secrets, &app_arn, &secret(&app_user, "third-Passw0rd")).await;
    tokio::time::sleep(
        (kv_shared::store::MIN_REREAD_INTERVAL + Duration::from_millis(500))
            .saturating_sub(storm_started.elapsed()),
    )
    .await;
    let answer = call(&retrieve, fixture("retrieve.json", &token)).await;
    assert_eq!(answer.status, 200, "{answer:?}\n{}", retrieve.output());
    let output = retrieve.stop();
    for password in ["first-Passw0rd", "second-Passw0rd", "third-Passw0rd"] {
        assert!(
            !output.contains(password),
            "a password was logged:\n{output}"
        );
    }

    admin
        .execute(AssertSqlSafe(format!("DROP USER '{app_user}'@'%'")))
        .await
        .unwrap();
    admin
        .execute(AssertSqlSafe(format!("DROP DATABASE `{database}`")))
        .await
        .unwrap();
    for arn in [&master_arn, &app_arn] {
        let _ = secrets
            .delete_secret()
            .secret_id(arn)
            .force_delete_without_recovery(true)
            .send()
            .await;
    }
}

/// The parts of the test server's URL, `mysql://user:password@host:port`.
struct TestServer {
    url: String,
    user: String,
    password: String,
    host: String,
    port: u16,
}

impl TestServer {
    fn parse(url: &str) -> TestServer {
        let rest = url.strip_prefix("mysql://").expect("a mysql:// URL");
        let (credentials, address) = rest.rsplit_once('@').expect("user:password@host:port");
        let (user, password) = credentials.split_once(':').expect("user:password");
        let (host, port) = address
            .trim_end_matches('/')
            .rsplit_once(':')
            .expect("host:port");
        TestServer {
            url: url.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            host: host.to_owned(),
            port: port.parse().expect("a port"),
        }
    }
}

async fn set_password(admin: &mut MySqlConnection, user: &str, password: &str) {
    admin
        .execute(AssertSqlSafe(format!(
            "ALTER USER '{user}'@'%' IDENTIFIED BY '{password}'"
        )))
        .await
        .unwrap();
}

/// Ends every connection of `user`, as the server's or RDS Proxy's idle timeout would.
async fn kill_connections_of(admin: &mut MySqlConnection, user: &str) {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT CAST(id AS SIGNED) FROM information_schema.processlist WHERE user = ?",
    )
    .bind(user)
    .fetch_all(&mut *admin)
    .await
    .unwrap();
    assert!(!ids.is_empty(), "the warm function holds a connection");
    for id in ids {
        let _ = admin.execute(AssertSqlSafe(format!("KILL {id}"))).await;
    }
}

fn secrets_client(endpoint: &str) -> Client {
    Client::from_conf(
        aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .build(),
    )
}

async fn create_secret(client: &Client, prefix: &str, value: &str) -> String {
    let output = client
        .create_secret()
        .name(test_support::unique_name(prefix))
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|error| {
            panic!(
                "the Secrets Manager emulator (KV_TEST_SECRETS_ENDPOINT) refused a secret: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&error)
            )
        });
    output.arn().expect("an ARN").to_owned()
}

/// A new current value of the secret, as a rotation stores it.
async fn put_secret(client: &Client, arn: &str, value: &str) {
    client
        .put_secret_value()
        .secret_id(arn)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

/// The HTTP API event `tests/fixtures/events/http-api-v2/<name>`, `__TOKEN__` replaced.
fn fixture(name: &str, token: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/events/http-api-v2")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path:?}: {error}"));
    serde_json::from_str(&text.replace("__TOKEN__", token)).expect("a JSON event")
}

/// A local stand-in for CloudFormation's pre-signed response URL: the bodies PUT to it.
async fn response_endpoint() -> (String, mpsc::UnboundedReceiver<Value>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/response",
            put(
                |State(sender): State<mpsc::UnboundedSender<Value>>, body: Bytes| async move {
                    let _ = sender.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    ""
                },
            ),
        )
        .with_state(sender);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/response"), receiver)
}

/// A function's answer to an API Gateway event.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Value,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&Value> {
        self.headers.get(name)
    }
}

/// `function`'s answer to the API Gateway event `event`.
async fn call(function: &Function, event: Value) -> Answer {
    let answer = function
        .invoke(&test_support::unique_name("invocation"), event)
        .await;
    let body = answer["body"]
        .as_str()
        .and_then(|body| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    Answer {
        status: answer["statusCode"].as_u64().unwrap_or(0) as u16,
        headers: answer["headers"].clone(),
        body,
    }
}
