//! RDS Proxy runs the functions' transactions on database connections of its own, whichever is
//! free, and opens each of them with `template.yaml`'s `InitQuery` (the proxy target group's
//! `ConnectionPoolConfigurationInfo`). The `SET` sqlx sends when it connects reaches only the
//! database connection borrowed at that moment (`EXCLUDE_VARIABLE_SETS` keeps it from pinning
//! one), so the `InitQuery` must leave every connection as that `SET` does: the same
//! `sql_mode`, time zone and character set, or a transaction would run under other settings
//! depending on the connection it landed on.

use std::path::PathBuf;

use kv_shared::store::ConnectOptions;
use serde_norway::Value as Yaml;
use sqlx::mysql::MySqlConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

/// The session state sqlx's `SET` changes, as the server reports it, in one string.
const SESSION: &str = "SELECT CAST(CONCAT_WS(' | ', @@session.sql_mode, @@session.time_zone, \
    @@session.character_set_client, @@session.character_set_connection, \
    @@session.character_set_results, @@session.collation_connection) AS CHAR)";

async fn session(connection: &mut MySqlConnection) -> String {
    sqlx::raw_sql(SESSION)
        .fetch_one(connection)
        .await
        .expect("the session's settings")
        .get(0)
}

/// The target group's `InitQuery`.
fn init_query() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("template.yaml");
    let template: Yaml = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    template["Resources"]["DatabaseProxyTargetGroup"]["Properties"]
        ["ConnectionPoolConfigurationInfo"]["InitQuery"]
        .as_str()
        .expect("template.yaml: the proxy target group has an InitQuery")
        .to_owned()
}

#[tokio::test]
async fn the_proxys_init_query_leaves_a_connection_as_sqlx_connects_it() {
    let Some(url) = test_support::mysql_server_url(
        "proxy_session::the_proxys_init_query_leaves_a_connection_as_sqlx_connects_it",
    ) else {
        return;
    };
    // The options the service connects with (shared/src/config.rs keeps sqlx's defaults for
    // the session: sql_mode, time zone, character set).
    let ConnectOptions::MySql(options) = ConnectOptions::from_url(&url).unwrap() else {
        panic!("{url} is a MySQL URL");
    };
    let mut by_sqlx = MySqlConnection::connect_with(&options).await.unwrap();
    // A connection as the server opens it, as RDS Proxy's own are before their InitQuery. Its
    // handshake asks for utf8mb4, as sqlx's does; the proxy's need not, so it starts in latin1.
    let untouched = options
        .clone()
        .pipes_as_concat(false)
        .no_engine_substitution(false)
        .timezone(None)
        .set_names(false);
    let mut by_proxy = MySqlConnection::connect_with(&untouched).await.unwrap();
    sqlx::raw_sql("SET NAMES latin1")
        .execute(&mut by_proxy)
        .await
        .unwrap();
    let expected = session(&mut by_sqlx).await;
    assert_ne!(
        session(&mut by_proxy).await,
        expected,
        "sqlx's SET changes nothing on this server: the comparison below would prove nothing"
    );

    sqlx::raw_sql(AssertSqlSafe(init_query()))
        .execute(&mut by_proxy)
        .await
        .expect("the InitQuery runs");
    assert_eq!(
        session(&mut by_proxy).await,
        expected,
        "after template.yaml's InitQuery, a connection must be as sqlx leaves the ones it opens \
         (sqlx-mysql's MySqlConnectOptions::connect): sql_mode | time_zone | character sets | collation"
    );
}
