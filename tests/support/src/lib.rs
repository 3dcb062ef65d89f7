//! What every test target of the workspace shares: whether this run is CI, where the test
//! servers that `scripts/test.sh` starts are, and names no other test uses.
//!
//! A test that needs a server it was not given is skipped locally (with a note on stderr) and
//! fails under CI (`CI=true` or `CI=1`): in CI nothing is ever skipped silently.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{AssertSqlSafe, Connection, Executor, MySqlConnection};
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether this run is CI (`CI` is `true` or `1`, in any case).
pub fn is_ci() -> bool {
    std::env::var("CI")
        .is_ok_and(|value| matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "1"))
}

/// The server-level URL (no database) of the MySQL test server, from `KV_TEST_MYSQL_URL`.
/// `None` when it is unset, after saying that `test` is skipped; under CI that panics.
pub fn mysql_server_url(test: &str) -> Option<String> {
    required_url("KV_TEST_MYSQL_URL", test)
}

/// The URL of the Secrets Manager emulator, from `KV_TEST_SECRETS_ENDPOINT`, under the same
/// rules as [`mysql_server_url`].
pub fn secrets_endpoint(test: &str) -> Option<String> {
    required_url("KV_TEST_SECRETS_ENDPOINT", test)
}

fn required_url(variable: &str, test: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_owned()),
        _ if is_ci() => panic!(
            "{variable} is not set, and under CI the test {test} must run, not skip: \
             run the tests with ./scripts/test.sh, which starts the server and sets it"
        ),
        _ => {
            eprintln!("SKIPPED {test}: {variable} is not set (./scripts/test.sh sets it)");
            None
        }
    }
}

/// A name no other test, process or run uses: `prefix`, the process id, a counter and the
/// clock's nanoseconds, joined by `_` (valid as a MySQL database or Secrets Manager name).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a database of a [`unique_name`] made from `prefix` on the MySQL server at `server`
/// (a URL without a database): its name. Panics if the server refuses.
pub async fn create_mysql_database(server: &str, prefix: &str) -> String {
    let name = unique_name(prefix);
    let mut admin = MySqlConnection::connect(server)
        .await
        .expect("the MySQL test server answers");
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
        .await
        .expect("a fresh test database");
    let _ = admin.close().await;
    name
}
