//! How statements reach the database: on MySQL as text, never prepared (RDS Proxy pins a
//! session that prepares one), with keys and values written as literals that come back byte for
//! byte.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;
use kv_shared::store::{ConnectOptions, PoolSettings, Store};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use reqwest::Method;
use serde_json::json;
use sqlx::Connection;
use sqlx::mysql::MySqlConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::helpers::{
    PASSWORD, TestApp, TestSettings, encode, on_both_backends, registration, sleep,
    spawn_app_on_mysql,
};

on_both_backends!(any_key_and_value_comes_back_byte_for_byte);

/// MySQL's command bytes (the first byte of a client packet that starts a command).
const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;

/// The commands clients sent through a [`CountingRelay`], of the kinds that matter here.
#[derive(Default)]
struct Commands {
    queries: AtomicU64,
    prepares: AtomicU64,
    executes: AtomicU64,
    /// Client connections that ended.
    closed: AtomicU64,
    encrypted: AtomicBool,
}

impl Commands {
    fn counter(&self, command: u8) -> Option<&AtomicU64> {
        match command {
            COM_QUERY => Some(&self.queries),
            COM_STMT_PREPARE => Some(&self.prepares),
            COM_STMT_EXECUTE => Some(&self.executes),
            _ => None,
        }
    }
}

/// A TCP relay in front of the MySQL test server that reads the client's side of each
/// connection as MySQL packets (a 3-byte length, a sequence number, the payload) and counts the
/// commands, the packets of sequence number 0.
struct CountingRelay {
    port: u16,
    commands: Arc<Commands>,
}

impl CountingRelay {
    async fn start(server: (String, u16)) -> CountingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().unwrap().port();
        let commands = Arc::new(Commands::default());
        let counted = commands.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = TcpStream::connect(&server)
                    .await
                    .expect("the server answers");
                tokio::spawn(relay(client, upstream, counted.clone()));
            }
        });
        CountingRelay { port, commands }
    }
}

async fn relay(client: TcpStream, upstream: TcpStream, commands: Arc<Commands>) {
    let (mut client_reads, mut client_writes) = client.into_split();
    let (mut server_reads, mut server_writes) = upstream.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_reads, &mut client_writes).await;
    });
    let mut first_packet = true;
    loop {
        let mut header = [0u8; 4];
        if client_reads.read_exact(&mut header).await.is_err() {
            break;
        }
        let length =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        let mut payload = vec![0u8; length];
        if client_reads.read_exact(&mut payload).await.is_err() {
            break;
        }
        // The client's first packet answers the server's greeting; 32 bytes long, it asks
        // for TLS, inside which nothing can be read.
        if first_packet && length == 32 {
            commands.encrypted.store(true, Ordering::SeqCst);
        }
        if header[3] == 0
            && !first_packet
            && let Some(counter) = payload
                .first()
                .and_then(|&command| commands.counter(command))
        {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        first_packet = false;
        if server_writes.write_all(&header).await.is_err()
            || server_writes.write_all(&payload).await.is_err()
        {
            break;
        }
    }
    commands.closed.fetch_add(1, Ordering::SeqCst);
    let _ = server_writes.shutdown().await;
    let _ = answers.await;
}

/// The app on a fresh database of the MySQL test server at `server`, reached through a
/// [`CountingRelay`].
async fn app_through_relay(server: &str, settings: TestSettings) -> (TestApp, CountingRelay) {
    let url = reqwest::Url::parse(server).expect("a MySQL URL");
    let host = url.host_str().expect("a host").to_owned();
    let relay = CountingRelay::start((host, url.port().unwrap_or(3306))).await;
    let mut through_relay = url.clone();
    through_relay.set_port(Some(relay.port)).unwrap();
    let app = spawn_app_on_mysql(through_relay.as_str().trim_end_matches('/'), settings).await;
    assert!(
        !relay.commands.encrypted.load(Ordering::SeqCst),
        "the relay cannot count inside TLS"
    );
    (app, relay)
}

/// A statement whose text passes 16 KB pins its session on RDS Proxy: its connection is closed
/// after the request (a store of a 9,000-byte value: 18,000 hexadecimal digits), while
/// shorter statements keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mysql_a_statement_over_16_kb_retires_its_connection() {
    let Some(server) =
        test_support::mysql_server_url("on_mysql_a_statement_over_16_kb_retires_its_connection")
    else {
        return;
    };
    let (app, relay) = app_through_relay(&server, TestSettings::default()).await;
    let token = app.user_with_token("large").await.1;
    let closed = || relay.commands.closed.load(Ordering::SeqCst);
    assert_eq!(app.store(&token, "small", "v").await.status, 200);
    let before = closed();
    for _ in 0..4 {
        assert_eq!(app.retrieve(&token, "small").await.status, 200);
    }
    assert_eq!(closed(), before, "short statements keep their connection");

    let large = "x".repeat(9000);
    assert_eq!(app.store(&token, "large", &large).await.status, 200);
    for _ in 0..4 {
        assert_eq!(app.retrieve(&token, "small").await.status, 200);
    }
    assert_eq!(
        closed(),
        before + 1,
        "the connection of the long statement is closed"
    );
    let answer = app.retrieve(&token, "large").await;
    assert_eq!(answer.body["data"]["valueN"], json!(large));
}

/// Every statement the store sends, on MySQL, goes as text: through the relay, the app applies
/// its migrations to a fresh database, answers each endpoint on each of its paths (success,
/// conflict, missing, ended session, throttled), and the sweep runs, while no
/// `COM_STMT_PREPARE` (nor `COM_STMT_EXECUTE`) passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mysql_no_statement_is_prepared() {
    let Some(server) = test_support::mysql_server_url("on_mysql_no_statement_is_prepared") else {
        return;
    };
    let settings = TestSettings {
        quota_max_keys: 3,
        login_max_failures: 2,
        ..TestSettings::default()
    };
    let (app, relay) = app_through_relay(&server, settings).await;
    let migrating = relay.commands.queries.load(Ordering::SeqCst);
    assert!(migrating > 10, "the relay saw the migrations: {migrating}");

    exercise_every_statement(&app).await;

    let queries = relay.commands.queries.load(Ordering::SeqCst);
    assert!(queries > 60, "the relay saw the statements: {queries}");
    assert_eq!(relay.commands.prepares.load(Ordering::SeqCst), 0);
    assert_eq!(relay.commands.executes.load(Ordering::SeqCst), 0);
}

/// The migrations, run as text, keep sqlx's books (sqlx's own runner finds the database up to
/// date) and take sqlx's lock: a second migration waits for the first to release it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mysql_migrations_keep_sqlx_books_and_lock() {
    let Some(server) =
        test_support::mysql_server_url("on_mysql_migrations_keep_sqlx_books_and_lock")
    else {
        return;
    };
    let (app, _relay) = app_through_relay(&server, TestSettings::default()).await;
    let url = app.mysql_url().expect("a MySQL app");
    let migrator = sqlx::migrate::Migrator::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/mysql"),
    )
    .await
    .expect("the migrations can be read");
    let recorded = || async {
        let mut connection = MySqlConnection::connect(&url).await.expect("a connection");
        let rows: Vec<(i64, bool)> =
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&mut connection)
                .await
                .expect("sqlx's table");
        rows
    };
    let before = recorded().await;
    assert_eq!(before.len(), migrator.iter().count());
    assert!(before.iter().all(|(_, success)| *success), "{before:?}");
    let mut connection = MySqlConnection::connect(&url).await.expect("a connection");
    migrator
        .run(&mut connection)
        .await
        .expect("sqlx's runner accepts the database");
    assert_eq!(
        recorded().await,
        before,
        "sqlx's runner found nothing to apply"
    );

    // sqlx names its lock 0x3d32ad9e times the database name's CRC-32 in hexadecimal; for
    // `kv_bench` that is deb25508e9dab42 (computed with Python's zlib.crc32).
    let (name,): (String,) = sqlx::query_as("SELECT LOWER(HEX(1026731422 * CRC32('kv_bench')))")
        .fetch_one(&mut connection)
        .await
        .expect("a lock name");
    assert_eq!(name, "deb25508e9dab42");

    let (locked,): (i64,) =
        sqlx::query_as("SELECT GET_LOCK(LOWER(HEX(1026731422 * CRC32(DATABASE()))), 10)")
            .fetch_one(&mut connection)
            .await
            .expect("the lock");
    assert_eq!(locked, 1);
    let store = Store::connect_lazy(
        ConnectOptions::from_url(&url).expect("a MySQL URL"),
        &PoolSettings {
            max_connections: 1,
            max_idle_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        },
    );
    let mut migration = std::pin::pin!(store.migrate());
    tokio::select! {
        outcome = &mut migration => panic!("migrated while the lock was held: {outcome:?}"),
        () = sleep(Duration::from_millis(500)) => {}
    }
    sqlx::query("SELECT RELEASE_LOCK(LOWER(HEX(1026731422 * CRC32(DATABASE()))))")
        .execute(&mut connection)
        .await
        .expect("released");
    migration
        .await
        .expect("the migration succeeds once the lock is free");
}

/// Each endpoint on each of its ways through the store, and the sweep.
async fn exercise_every_statement(app: &TestApp) {
    assert_eq!(
        app.request(Method::GET, "/health", None, None).await.status,
        200
    );
    app.register_user("alice").await;
    app.register(registration("alice"))
        .await
        .assert_code(409, "USERNAME_EXISTS");
    let mut same_email = registration("alicia");
    same_email["email"] = registration("alice")["email"].clone();
    app.register(same_email)
        .await
        .assert_code(409, "EMAIL_EXISTS");

    let wrong = json!({"username": "alice", "password": "Wr0ng!Password"});
    app.token(wrong.clone())
        .await
        .assert_code(401, "INVALID_CREDENTIALS");
    let (token, refresh_token) = app.login_session("alice").await;

    assert_eq!(app.store(&token, "a", "1").await.status, 200);
    app.store(&token, "a", "1")
        .await
        .assert_code(409, "KEY_EXISTS");
    let with_ttl = json!({"keyN": "b", "valueN": "2", "ttl_seconds": 60});
    let answer = app
        .send(Method::POST, "/data/store", &token, &[], Some(with_ttl))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let short_lived = json!({"keyN": "c", "valueN": "3", "ttl_seconds": 1});
    let answer = app
        .send(Method::POST, "/data/store", &token, &[], Some(short_lived))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    app.store(&token, "d", "4")
        .await
        .assert_code(403, "QUOTA_EXCEEDED");
    sleep(Duration::from_millis(1100)).await;
    // Over the expired entry.
    assert_eq!(app.store(&token, "c", "again").await.status, 200);

    assert_eq!(app.retrieve(&token, "a").await.status, 200);
    app.retrieve(&token, "missing")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    assert_eq!(app.update(&token, "a", "one").await.status, 200);
    let stale = [("if-match", "\"stale\"")];
    let body = json!({"valueN": "x", "ttl_seconds": null});
    let answer = app
        .send(Method::PUT, "/data/update/a", &token, &stale, Some(body))
        .await;
    answer.assert_code(412, "PRECONDITION_FAILED");
    app.update(&token, "missing", "x")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    assert_eq!(app.delete(&token, "b").await.status, 200);
    app.delete(&token, "missing")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    let page = app.list(&token, "limit=1").await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    let cursor = page.body["data"]["next_cursor"].as_str().expect("a cursor");
    assert_eq!(
        app.list(&token, &format!("limit=1&cursor={cursor}"))
            .await
            .status,
        200
    );
    assert_eq!(app.list(&token, "prefix=zzz").await.status, 200);

    let expiring = json!({"valueN": "soon gone", "ttl_seconds": 1});
    let answer = app
        .send(Method::PUT, "/data/update/c", &token, &[], Some(expiring))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);

    let renewed = app.refresh(&refresh_token).await;
    assert_eq!(renewed.status, 200, "{:?}", renewed.body);
    let token = renewed.body["data"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let change = json!({"current_password": PASSWORD, "new_password": "N3w!Passw0rd-x"});
    assert_eq!(app.change_password(&token, change).await.status, 200);
    for ended in [
        app.retrieve(&token, "a").await,
        app.retrieve(&token, "missing").await,
        app.update(&token, "a", "x").await,
        app.delete(&token, "a").await,
        app.store(&token, "e", "5").await,
        app.list(&token, "").await,
    ] {
        ended.assert_code(401, "INVALID_TOKEN");
    }
    let answer = app.refresh(&refresh_token).await;
    answer.assert_error(
        401,
        "INVALID_REFRESH_TOKEN",
        "Invalid refresh token provided.",
    );

    let new_password = json!({"username": "alice", "password": "N3w!Passw0rd-x"});
    let answer = app.token(new_password.clone()).await;
    let token = answer.body["data"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.logout(&token, None).await.status, 200);
    let answer = app.token(new_password).await;
    let token = answer.body["data"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let everywhere = Some(json!({"everywhere": true}));
    assert_eq!(app.logout(&token, everywhere).await.status, 200);
    join_all((0..2).map(|_| app.token(wrong.clone()))).await;
    assert_eq!(app.token(wrong).await.status, 429);

    sleep(Duration::from_millis(1100)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let swept = kv_shared::sweep::sweep_expired(&app.state.store, deadline, Duration::ZERO)
        .await
        .expect("the sweep runs");
    assert_eq!(swept.deleted, 1, "{swept:?}");
    assert!(swept.sessions_removed >= 3, "{swept:?}");
    assert!(swept.login_failures_removed >= 2, "{swept:?}");
}

/// Keys (valid ones: no control characters) and values (anything UTF-8 holds, NUL
/// included), full of quotes, backslashes and characters of every width.
fn key_and_value() -> impl Strategy<Value = (String, String)> {
    let awkward = prop_oneof![
        Just('\''),
        Just('"'),
        Just('\\'),
        Just('`'),
        Just('?'),
        Just('%'),
        Just('_'),
        Just(';'),
        Just('\u{0}'),
        Just('é'),
        Just('\u{2028}'),
        Just('\u{10FFFF}'),
        Just('😀'),
        any::<char>(),
    ];
    let value = proptest::collection::vec(awkward.clone(), 1..200)
        .prop_map(|chars| chars.into_iter().collect::<String>());
    let key = proptest::collection::vec(awkward, 1..60).prop_map(|chars| {
        chars
            .into_iter()
            .filter(|c| !c.is_control())
            .collect::<String>()
    });
    let key = key.prop_filter("a key is not blank", |key| {
        !key.trim().is_empty() && key.chars().count() <= 255
    });
    (key, value)
}

/// Arbitrary keys and values (proptest's, from a fixed seed) are stored and come back
/// byte for byte: from the app, from the database directly, and in a listing.
async fn any_key_and_value_comes_back_byte_for_byte(app: TestApp) {
    let (user_id, token) = app.user_with_token("bytes").await;
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strategy = key_and_value();
    let mut stored = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let (key, value) = strategy.new_tree(&mut runner).expect("a case").current();
        if !stored.insert(key.clone()) {
            continue;
        }
        let body = json!({"keyN": key, "valueN": value});
        let answer = app
            .send(Method::POST, "/data/store", &token, &[], Some(body))
            .await;
        assert_eq!(answer.status, 200, "{key:?}: {:?}", answer.body);
        let answer = app.retrieve(&token, &key).await;
        assert_eq!(answer.status, 200, "{key:?}: {:?}", answer.body);
        assert_eq!(answer.body["data"]["keyN"], json!(key));
        assert_eq!(answer.body["data"]["valueN"], json!(value), "{key:?}");
        assert_eq!(
            app.db.value_of(user_id, &key).await.as_deref(),
            Some(value.as_str())
        );
        let path = format!("/data/update/{}", encode(&key));
        let twice = format!("{value}{value}");
        let body = json!({"valueN": twice});
        let answer = app.send(Method::PUT, &path, &token, &[], Some(body)).await;
        assert_eq!(answer.status, 200, "{key:?}: {:?}", answer.body);
        assert_eq!(
            app.db.value_of(user_id, &key).await.as_deref(),
            Some(twice.as_str())
        );
    }
    let mut listed = Vec::new();
    let mut query = "limit=1000".to_owned();
    loop {
        let page = app.list(&token, &query).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        for entry in page.body["data"]["keys"].as_array().expect("keys") {
            listed.push(entry["keyN"].as_str().expect("a key").to_owned());
        }
        match page.body["data"]["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=1000&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<&String> = {
        let mut keys: Vec<&String> = stored.iter().collect();
        keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        keys
    };
    assert_eq!(listed.iter().collect::<Vec<_>>(), expected);
}
