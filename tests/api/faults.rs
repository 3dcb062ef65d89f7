//! Database faults, on a MariaDB server of the test's own: stopped while the app serves, and
//! killed in the middle of a burst of stores.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use reqwest::{Method, StatusCode};

use sqlx::{Connection, Executor, MySqlConnection};

use crate::helpers::{TestApp, TestSettings, registration, sleep, spawn_app_on_mysql};

/// A MariaDB server started by `scripts/mariadb.sh` in a directory and on a port of its own,
/// stopped and removed on drop.
pub(crate) struct PrivateMariaDb {
    dir: tempfile::TempDir,
    pub(crate) port: u16,
    /// Server-level URL, without a database.
    pub(crate) url: String,
    /// `KV_MARIADB_SSL_DIR`: the server's TLS certificate and key, if it speaks TLS.
    ssl_dir: Option<PathBuf>,
}

impl PrivateMariaDb {
    /// A fresh server; `None` (skipped) when MariaDB is not installed, except under CI, where
    /// `scripts/mariadb.sh` installs it.
    async fn start() -> Option<PrivateMariaDb> {
        PrivateMariaDb::start_with_tls(None).await
    }

    /// [`Self::start`], speaking TLS with the certificate and key of `ssl_dir` when given
    /// (`scripts/mariadb.sh`'s `KV_MARIADB_SSL_DIR`).
    pub(crate) async fn start_with_tls(ssl_dir: Option<PathBuf>) -> Option<PrivateMariaDb> {
        let installed = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]
            .iter()
            .any(|path| Path::new(path).exists());
        if !installed && !test_support::is_ci() {
            eprintln!("skipped: MariaDB is not installed (./scripts/test.sh installs it)");
            return None;
        }
        // A port free now may be taken before mariadbd binds it (tests run in parallel): try
        // another one then.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let server = PrivateMariaDb {
                dir: tempfile::tempdir().expect("a temporary directory"),
                port,
                url: format!("mysql://kv:kv-test-password@127.0.0.1:{port}"),
                ssl_dir: ssl_dir.clone(),
            };
            match server.try_script("start").await {
                Ok(()) => return Some(server),
                Err(error) => failures.push(error),
            }
        }
        panic!("MariaDB did not start: {failures:#?}");
    }

    async fn run_script(&self, command: &'static str) {
        if let Err(error) = self.try_script(command).await {
            panic!("{error}");
        }
    }

    async fn try_script(&self, command: &'static str) -> Result<(), String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mariadb.sh");
        let dir = self.dir.path().to_owned();
        let port = self.port;
        let ssl_dir = self.ssl_dir.clone();
        let output = tokio::task::spawn_blocking(move || {
            let mut script = Command::new(script);
            if let Some(ssl_dir) = ssl_dir {
                script.env("KV_MARIADB_SSL_DIR", ssl_dir);
            }
            script
                .arg(command)
                .env("KV_MARIADB_DIR", dir)
                .env("KV_TEST_MYSQL_PORT", port.to_string())
                .output()
                .expect("scripts/mariadb.sh runs")
        })
        .await
        .unwrap();
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "mariadb.sh {command}: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("mariadbd.pid")
    }

    /// `kill -9`: no shutdown, no flush beyond what InnoDB already made durable.
    fn kill(&self) {
        let pid = std::fs::read_to_string(self.pid_file()).expect("a pid file");
        let status = Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        let _ = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mariadb.sh"))
            .arg("stop")
            .env("KV_MARIADB_DIR", self.dir.path())
            .env("KV_TEST_MYSQL_PORT", self.port.to_string())
            .output();
    }
}

/// Polls `/health` until the app reaches its database again; panics after 60 s.
async fn wait_until_healthy(app: &TestApp) {
    for _ in 0..120 {
        if app
            .client
            .get(format!("{}/health", app.address))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        sleep(Duration::from_millis(500)).await;
    }
    panic!("the app never reached the restarted database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_gives_503_and_the_same_process_recovers() {
    let Some(database) = PrivateMariaDb::start().await else {
        return;
    };
    let app = spawn_app_on_mysql(&database.url, TestSettings::default()).await;
    let (_, token) = app.user_with_token("survivor").await;
    assert_eq!(app.store(&token, "kept", "value").await.status, 200);

    database.run_script("stop").await;

    let health = app.request(Method::GET, "/health", None, None).await;
    let retrieve = app.retrieve(&token, "kept").await;
    let store = app.store(&token, "new", "value").await;
    let login = app
        .token(serde_json::json!({"username": "survivor", "password": crate::helpers::PASSWORD}))
        .await;
    for answer in [&health, &retrieve, &store, &login] {
        answer.assert_code(503, "SERVICE_UNAVAILABLE");
        assert!(answer.headers.contains_key("retry-after"), "{answer:?}");
    }

    database.run_script("start").await;
    wait_until_healthy(&app).await;
    assert_eq!(
        app.retrieve(&token, "kept").await.body["data"]["valueN"],
        "value"
    );
    assert_eq!(app.store(&token, "new", "value").await.status, 200);
}

/// A server with no connection to spare refuses new ones with MySQL's error 1040, "Too many
/// connections" (as RDS Proxy does with its borrow timeout): the app answers 503 with
/// `Retry-After`, never 500, and answers again as soon as a connection is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_out_of_connections_gives_503_and_recovers_when_one_frees() {
    let Some(database) = PrivateMariaDb::start().await else {
        return;
    };
    // A user without the administrators' privileges, whom max_connections limits.
    let mut admin = MySqlConnection::connect(&database.url)
        .await
        .expect("the server answers");
    for statement in [
        "CREATE USER 'crowd'@'127.0.0.1' IDENTIFIED BY 'crowd-password'",
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES \
         ON *.* TO 'crowd'@'127.0.0.1'",
        "SET GLOBAL max_connections = 3",
    ] {
        admin.execute(statement).await.expect("the server takes it");
    }
    let crowd = format!("mysql://crowd:crowd-password@127.0.0.1:{}", database.port);
    let app = spawn_app_on_mysql(&crowd, TestSettings::default()).await;
    // The app's first sweep left a connection in its pool: end it, so that its requests
    // need new ones.
    let app_connections: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM information_schema.processlist WHERE user = 'crowd'")
            .fetch_all(&mut admin)
            .await
            .unwrap();
    for (id,) in app_connections {
        let _ = admin
            .execute(sqlx::AssertSqlSafe(format!("KILL {id}")))
            .await;
    }
    let mut held = Vec::new();
    let refusal = loop {
        match MySqlConnection::connect(&crowd).await {
            Ok(connection) => held.push(connection),
            Err(error) => break error,
        }
        assert!(held.len() < 10, "max_connections is not enforced");
    };
    let number = refusal
        .as_database_error()
        .and_then(|error| error.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .map(|error| error.number());
    assert_eq!(number, Some(1040), "{refusal}");

    // The first may find the killed connection (the app cannot reach the database either
    // way); the others open new ones and are refused.
    let answers = [
        app.register(registration("crowded")).await,
        app.register(registration("crowded")).await,
        app.request(Method::GET, "/health", None, None).await,
    ];
    for answer in &answers {
        answer.assert_code(503, "SERVICE_UNAVAILABLE");
        assert!(answer.headers.contains_key("retry-after"), "{answer:?}");
    }

    held.pop()
        .expect("a held connection")
        .close()
        .await
        .unwrap();
    wait_until_healthy(&app).await;
    assert_eq!(app.register(registration("crowded")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_store_survives_a_killed_database() {
    let Some(database) = PrivateMariaDb::start().await else {
        return;
    };
    let app = spawn_app_on_mysql(&database.url, TestSettings::default()).await;
    let (user_id, token) = app.user_with_token("durable").await;

    const STORES: usize = 400;
    let answered = Arc::new(AtomicUsize::new(0));
    let stores = (0..STORES).map(|index| {
        let answered = answered.clone();
        let (app, token) = (&app, &token);
        async move {
            let key = format!("key-{index}");
            let status = app
                .client
                .post(format!("{}/data/store", app.address))
                .bearer_auth(token)
                .json(&serde_json::json!({"keyN": key, "valueN": format!("value-{index}")}))
                .send()
                .await
                .expect("an answer, even with the database gone")
                .status();
            answered.fetch_add(1, Ordering::SeqCst);
            (index, status)
        }
    });
    let killer = async {
        while answered.load(Ordering::SeqCst) < STORES / 8 {
            tokio::task::yield_now().await;
        }
        database.kill();
    };
    let (results, ()) = tokio::join!(join_all(stores), killer);

    let acknowledged: Vec<usize> = results
        .iter()
        .filter(|(_, status)| *status == StatusCode::OK)
        .map(|(index, _)| *index)
        .collect();
    let unavailable = results
        .iter()
        .filter(|(_, status)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!(
        acknowledged.len() + unavailable,
        STORES,
        "every store is either acknowledged or told to retry: {results:?}"
    );
    assert!(acknowledged.len() >= STORES / 8, "{results:?}");
    assert!(unavailable > 0, "the database died mid-burst");

    database.run_script("start").await;
    wait_until_healthy(&app).await;
    for index in acknowledged {
        assert_eq!(
            app.db.value_of(user_id, &format!("key-{index}")).await,
            Some(format!("value-{index}")),
            "acknowledged store {index} is durable"
        );
    }
}
