//! The Lambda configuration loader against a real Secrets Manager API: the emulator of
//! `scripts/moto.sh`, at `KV_TEST_SECRETS_ENDPOINT` (e.g. `http://127.0.0.1:5055`).
//!
//! Each test creates its own secrets (unique names, so the tests run in parallel) with an
//! explicitly configured SDK client, then runs the real loader, `Config::from_sources` with a
//! `SecretsClient`, over them.
//!
//! Without `KV_TEST_SECRETS_ENDPOINT` the tests print a skip message and pass, except in CI
//! (`CI=true` or `CI=1`), where they fail. With it set, an unreachable emulator is a failure.
//!
//!     export KV_TEST_SECRETS_ENDPOINT="$(scripts/moto.sh start)"
//!     cargo test --test secrets
//!     scripts/moto.sh stop

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use kv_shared::config::{Config, ConfigError, MIN_JWT_SECRET_BYTES, Runtime, SecretsClient};
use kv_shared::store::ConnectOptions;

/// Region and credentials of the emulator: fake, it accepts any.
const REGION: &str = "us-east-1";
const ACCESS_KEY_ID: &str = "testing";
const SECRET_ACCESS_KEY: &str = "testing";

/// `len` random hexadecimal digits (secret values no other test or run uses).
fn random_hex(len: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        hasher.write_u32(std::process::id());
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out.truncate(len);
    out
}

/// Points the environment-configured AWS SDK (what `SecretsClient::from_env` reads) at the
/// emulator, with fake credentials. Local workaround: `SecretsClient` has no constructor from
/// an explicit SDK configuration yet, so the only way to aim the real loader at the emulator
/// is the standard AWS variables.
fn point_environment_at(endpoint: &str) {
    static DONE: OnceLock<String> = OnceLock::new();
    let set = DONE.get_or_init(|| {
        // SAFETY: the process environment is changed once, inside this `OnceLock`, which
        // every test of this file passes before it reads any variable or starts any SDK
        // client; the other tests block on the lock meanwhile. No test in this binary runs
        // non-Rust code that reads the environment concurrently (Rust's own `std::env`
        // accesses are serialised by the standard library). Under nextest every test is
        // its own process anyway.
        unsafe {
            for name in [
                "AWS_PROFILE",
                "AWS_SESSION_TOKEN",
                "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
            ] {
                std::env::remove_var(name);
            }
            std::env::set_var("AWS_ENDPOINT_URL", endpoint);
            std::env::set_var("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint);
            std::env::set_var("AWS_REGION", REGION);
            std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID);
            std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        }
        endpoint.to_owned()
    });
    assert_eq!(set, endpoint, "one emulator per test process");
}

/// The emulator, seen through two clients: `admin` (explicitly configured, creates the
/// fixtures) and `loader` (the service's own `SecretsClient`, configured from the
/// environment as on Lambda).
struct Emulator {
    endpoint: String,
    admin: Client,
    loader: SecretsClient,
    created: Vec<String>,
}

impl Emulator {
    /// `None` when the test is skipped; panics when the emulator cannot be reached.
    async fn connect(test: &str) -> Option<Emulator> {
        let endpoint = test_support::secrets_endpoint(&format!("secrets::{test}"))?;
        let admin = Client::from_conf(
            aws_sdk_secretsmanager::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .endpoint_url(&endpoint)
                .region(Region::new(REGION))
                .credentials_provider(Credentials::new(
                    ACCESS_KEY_ID,
                    SECRET_ACCESS_KEY,
                    None,
                    None,
                    "secrets-emulator-test",
                ))
                .timeout_config(
                    TimeoutConfig::builder()
                        .operation_timeout(Duration::from_secs(20))
                        .build(),
                )
                .build(),
        );
        if let Err(error) = admin.list_secrets().max_results(1).send().await {
            panic!(
                "the Secrets Manager emulator at KV_TEST_SECRETS_ENDPOINT={endpoint} does not \
                 answer: {}. Is it running? (scripts/moto.sh start)",
                DisplayErrorContext(&error)
            );
        }
        point_environment_at(&endpoint);
        let loader = SecretsClient::from_env().await;
        Some(Emulator {
            endpoint,
            admin,
            loader,
            created: Vec::new(),
        })
    }

    /// Stores `value` under a new unique name; returns its ARN.
    async fn create_secret(&mut self, prefix: &str, value: &str) -> String {
        let name = test_support::unique_name(prefix);
        let output = self
            .admin
            .create_secret()
            .name(&name)
            .secret_string(value)
            .send()
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "could not create secret {name} in the emulator at {}: {}",
                    self.endpoint,
                    DisplayErrorContext(&error)
                )
            });
        let arn = output
            .arn()
            .expect("CreateSecret returns the ARN")
            .to_owned();
        self.created.push(arn.clone());
        arn
    }

    /// An ARN of the right shape that names no secret.
    fn missing_arn(&self, prefix: &str) -> String {
        format!(
            "arn:aws:secretsmanager:{REGION}:123456789012:secret:{}-AbCdEf",
            test_support::unique_name(prefix)
        )
    }

    /// The configuration the Lambda runtime loads from `vars`, with this emulator.
    async fn load(&self, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Config::from_sources(
            Runtime::Lambda,
            &|name| vars.get(name).cloned(),
            Some(&self.loader),
        )
        .await
    }

    /// Deletes this test's secrets (best effort: the emulator forgets them on stop anyway).
    async fn clean_up(self) {
        for arn in &self.created {
            let _ = self
                .admin
                .delete_secret()
                .secret_id(arn)
                .force_delete_without_recovery(true)
                .send()
                .await;
        }
    }
}

fn rds_secret(username: &str, password: &str, host: &str, port: u16, dbname: &str) -> String {
    // What RDS stores for a managed MySQL secret, extra fields included.
    serde_json::json!({
        "engine": "mysql",
        "username": username,
        "password": password,
        "host": host,
        "port": port,
        "dbname": dbname,
        "dbInstanceIdentifier": "kv-test",
    })
    .to_string()
}

/// Neither the error's message nor its debug form contains any of `secrets`.
fn assert_no_leak(error: &ConfigError, secrets: &[&str]) {
    let shown = format!("{error} / {error:?}");
    for secret in secrets {
        assert!(
            !shown.contains(secret),
            "the error reveals a secret value: {shown}"
        );
    }
}

#[tokio::test]
async fn lambda_config_reads_jwt_key_and_rds_database_secret() {
    let Some(mut emulator) =
        Emulator::connect("lambda_config_reads_jwt_key_and_rds_database_secret").await
    else {
        return;
    };
    let jwt_key = random_hex(64);
    let password = format!("p@ss:w/rd-{}", random_hex(12));
    let jwt_arn = emulator.create_secret("kv-test/jwt", &jwt_key).await;
    let db_arn = emulator
        .create_secret(
            "kv-test/db",
            &rds_secret(
                "kv_app",
                &password,
                "kv.cluster-test.us-east-1.rds.amazonaws.com",
                3307,
                "kv_prod",
            ),
        )
        .await;

    let config = emulator
        .load(&[
            ("JWT_SECRET_ARN", &jwt_arn),
            ("DATABASE_SECRET_ARN", &db_arn),
        ])
        .await
        .unwrap_or_else(|error| panic!("the loader refused valid secrets: {error}"));

    assert_eq!(jwt_key.len(), 64);
    assert_eq!(config.jwt_keys, [jwt_key.as_bytes()]);
    let ConnectOptions::MySql(mysql) = &config.database else {
        panic!("a database secret must give MySQL options");
    };
    assert_eq!(
        mysql.get_host(),
        "kv.cluster-test.us-east-1.rds.amazonaws.com"
    );
    assert_eq!(mysql.get_port(), 3307);
    assert_eq!(mysql.get_username(), "kv_app");
    assert_eq!(mysql.get_database(), Some("kv_prod"));
    assert_eq!(config.pool.max_connections, 1, "the Lambda default");
    let shown = format!("{config:?}");
    assert!(
        !shown.contains(&jwt_key) && !shown.contains(&password),
        "Config's debug form reveals a secret: {shown}"
    );

    // DATABASE_HOST / DATABASE_PORT / DATABASE_NAME override the secret (an RDS Proxy, say).
    let config = emulator
        .load(&[
            ("JWT_SECRET_ARN", &jwt_arn),
            ("DATABASE_SECRET_ARN", &db_arn),
            (
                "DATABASE_HOST",
                "kv-proxy.proxy-test.us-east-1.rds.amazonaws.com",
            ),
            ("DATABASE_PORT", "3306"),
            ("DATABASE_NAME", "kv"),
        ])
        .await
        .unwrap_or_else(|error| panic!("the loader refused valid secrets: {error}"));
    let ConnectOptions::MySql(mysql) = &config.database else {
        panic!("a database secret must give MySQL options");
    };
    assert_eq!(
        mysql.get_host(),
        "kv-proxy.proxy-test.us-east-1.rds.amazonaws.com"
    );
    assert_eq!(mysql.get_port(), 3306);
    assert_eq!(mysql.get_username(), "kv_app");
    assert_eq!(mysql.get_database(), Some("kv"));

    emulator.clean_up().await;
}

#[tokio::test]
async fn missing_secret_is_refused_naming_its_arn_without_leaking() {
    let Some(mut emulator) =
        Emulator::connect("missing_secret_is_refused_naming_its_arn_without_leaking").await
    else {
        return;
    };
    let jwt_key = random_hex(64);
    let password = format!("pw-{}", random_hex(20));
    let jwt_arn = emulator.create_secret("kv-test/jwt", &jwt_key).await;
    let db_arn = emulator
        .create_secret(
            "kv-test/db",
            &rds_secret("kv_app", &password, "db.test", 3306, "kv"),
        )
        .await;

    // The JWT secret does not exist (the database one does).
    let missing = emulator.missing_arn("kv-test/missing-jwt");
    let error = emulator
        .load(&[
            ("JWT_SECRET_ARN", &missing),
            ("DATABASE_SECRET_ARN", &db_arn),
        ])
        .await
        .expect_err("a missing JWT secret must stop the start-up");
    match &error {
        ConfigError::Secret { arn, reason } => {
            assert_eq!(arn, &missing);
            assert!(
                reason.contains("ResourceNotFound"),
                "the emulator should have answered 'not found': {reason}"
            );
        }
        other => panic!("expected ConfigError::Secret, got {other:?}"),
    }
    assert!(error.to_string().contains(&missing), "{error}");
    assert_no_leak(&error, &[&jwt_key, &password]);

    // The database secret does not exist (the JWT one does).
    let missing = emulator.missing_arn("kv-test/missing-db");
    let error = emulator
        .load(&[
            ("JWT_SECRET_ARN", &jwt_arn),
            ("DATABASE_SECRET_ARN", &missing),
        ])
        .await
        .expect_err("a missing database secret must stop the start-up");
    assert!(
        matches!(&error, ConfigError::Secret { arn, .. } if arn == &missing),
        "expected ConfigError::Secret for {missing}, got {error:?}"
    );
    assert!(error.to_string().contains(&missing), "{error}");
    assert_no_leak(&error, &[&jwt_key, &password]);

    // A database secret that is not RDS-format JSON is refused without echoing it.
    let not_json = format!("username=kv password={password}");
    let bad_db_arn = emulator.create_secret("kv-test/bad-db", &not_json).await;
    let error = emulator
        .load(&[
            ("JWT_SECRET_ARN", &jwt_arn),
            ("DATABASE_SECRET_ARN", &bad_db_arn),
        ])
        .await
        .expect_err("a malformed database secret must stop the start-up");
    assert!(
        matches!(&error, ConfigError::Secret { arn, .. } if arn == &bad_db_arn),
        "expected ConfigError::Secret for {bad_db_arn}, got {error:?}"
    );
    assert_no_leak(&error, &[&jwt_key, &password, &not_json]);

    emulator.clean_up().await;
}

#[tokio::test]
async fn short_jwt_secret_is_refused() {
    let Some(mut emulator) = Emulator::connect("short_jwt_secret_is_refused").await else {
        return;
    };
    let db_arn = emulator
        .create_secret(
            "kv-test/db",
            &rds_secret("kv_app", "pw", "db.test", 3306, "kv"),
        )
        .await;

    for length in [16, MIN_JWT_SECRET_BYTES - 1] {
        let short_key = random_hex(length);
        let jwt_arn = emulator
            .create_secret("kv-test/short-jwt", &short_key)
            .await;
        let error = emulator
            .load(&[
                ("JWT_SECRET_ARN", &jwt_arn),
                ("DATABASE_SECRET_ARN", &db_arn),
            ])
            .await
            .expect_err("a short JWT secret must stop the start-up");
        assert!(
            matches!(
                error,
                ConfigError::ShortJwtSecret { position: 1, count: 1, length: n } if n == length
            ),
            "expected ShortJwtSecret of {length} bytes, got {error:?}"
        );
        assert!(
            error
                .to_string()
                .contains(&MIN_JWT_SECRET_BYTES.to_string()),
            "{error}"
        );
        assert_no_leak(&error, &[&short_key]);
    }

    // The boundary: exactly MIN_JWT_SECRET_BYTES is enough.
    let key = random_hex(MIN_JWT_SECRET_BYTES);
    let jwt_arn = emulator.create_secret("kv-test/jwt", &key).await;
    let config = emulator
        .load(&[
            ("JWT_SECRET_ARN", &jwt_arn),
            ("DATABASE_SECRET_ARN", &db_arn),
        ])
        .await
        .unwrap_or_else(|error| panic!("a {MIN_JWT_SECRET_BYTES}-byte key was refused: {error}"));
    assert_eq!(config.jwt_keys, [key.as_bytes()]);

    emulator.clean_up().await;
}

#[tokio::test]
async fn a_comma_separated_secret_gives_several_keys() {
    let Some(mut emulator) = Emulator::connect("a_comma_separated_secret_gives_several_keys").await
    else {
        return;
    };
    let db_arn = emulator
        .create_secret(
            "kv-test/db",
            &rds_secret("kv_app", "pw", "db.test", 3306, "kv"),
        )
        .await;
    let (new, old) = (random_hex(64), random_hex(64));
    // As `aws secretsmanager put-secret-value --secret-string "new,old"` stores it, and with
    // whitespace (a console edit, a trailing newline) around the keys.
    for value in [format!("{new},{old}"), format!(" {new} ,\n{old}\n")] {
        let jwt_arn = emulator.create_secret("kv-test/jwt-keys", &value).await;
        let config = emulator
            .load(&[
                ("JWT_SECRET_ARN", &jwt_arn),
                ("DATABASE_SECRET_ARN", &db_arn),
            ])
            .await
            .unwrap_or_else(|error| panic!("two valid keys were refused: {error}"));
        assert_eq!(config.jwt_keys, [new.as_bytes(), old.as_bytes()]);
        let shown = format!("{config:?}");
        assert!(
            !shown.contains(&new) && !shown.contains(&old),
            "Config's debug form reveals a key: {shown}"
        );
    }

    // A trailing comma, or a short second key, stops the start-up, naming the key by position.
    let short = random_hex(MIN_JWT_SECRET_BYTES - 1);
    for (value, position) in [(format!("{new},"), 2), (format!("{new},{short}"), 2)] {
        let jwt_arn = emulator.create_secret("kv-test/jwt-keys", &value).await;
        let error = emulator
            .load(&[
                ("JWT_SECRET_ARN", &jwt_arn),
                ("DATABASE_SECRET_ARN", &db_arn),
            ])
            .await
            .expect_err("a bad second key must stop the start-up");
        assert!(
            matches!(
                error,
                ConfigError::EmptyJwtKey { position: p, count: 2 }
                    | ConfigError::ShortJwtSecret { position: p, count: 2, .. } if p == position
            ),
            "got {error:?}"
        );
        assert_no_leak(&error, &[&new, &short]);
    }

    emulator.clean_up().await;
}
