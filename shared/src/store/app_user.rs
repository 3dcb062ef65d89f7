//! The database user the API functions connect as: it may read and write rows of the schema
//! (SELECT, INSERT, UPDATE, DELETE) and nothing else. `db-migrate`, connected as the master
//! user, creates it or brings it up to date on every deployment.

use sqlx::{AssertSqlSafe, Connection, Executor};

use super::{Pool, Store};

/// The host part of the application user: any client (the functions, or RDS Proxy).
const APP_USER_HOST: &str = "%";

/// The privileges of the application user on its schema.
pub const APP_USER_PRIVILEGES: &str = "SELECT, INSERT, UPDATE, DELETE";

/// A MySQL user name and password, as an RDS-format secret holds them. Its `Debug` form shows
/// no password.
#[derive(Clone, PartialEq, Eq)]
pub struct AppUser {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for AppUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Store {
    /// Creates `user` if it does not exist, sets its password and grants it
    /// [`APP_USER_PRIVILEGES`] on the store's database; safe to run any number of times. Its
    /// other privileges, if any, are left alone (revoking them first would leave it without
    /// any for a moment, while functions use it). MySQL only; on a connection of its own.
    /// Answers the database's name. Errors never show the password.
    pub async fn ensure_app_user(&self, user: &AppUser) -> Result<String, String> {
        let Pool::MySql(pool) = &self.pool else {
            return Err("the application user exists only on MySQL".into());
        };
        let username = string_literal("user name", &user.username)?;
        if user.username.is_empty() || user.username.chars().count() > 32 {
            return Err("the application user's name must be 1 to 32 characters".into());
        }
        let password = string_literal("password", &user.password)?;
        if user.password.is_empty() {
            return Err("the application user's password is empty".into());
        }
        let redact = |error: sqlx::Error| {
            error
                .to_string()
                .replace(&user.password, "<redacted>")
                .replace(&password, "<redacted>")
        };
        let mut connection = pool.connect_unpooled().await.map_err(redact)?;
        let outcome = async {
            let database: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
                .fetch_one(&mut connection)
                .await
                .map_err(redact)?;
            let database = database.ok_or("the connection names no database")?;
            let account = format!("{username}@'{APP_USER_HOST}'");
            for statement in [
                format!("CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {password}"),
                format!("ALTER USER {account} IDENTIFIED BY {password}"),
                format!(
                    "GRANT {APP_USER_PRIVILEGES} ON `{}`.* TO {account}",
                    database.replace('`', "``")
                ),
            ] {
                connection
                    .execute(AssertSqlSafe(statement))
                    .await
                    .map_err(redact)?;
            }
            Ok(database)
        }
        .await;
        let _ = connection.close().await;
        outcome
    }
}

/// `text` as an SQL string literal, quotes doubled. A backslash is refused: whether it escapes
/// depends on the server's `NO_BACKSLASH_ESCAPES`, and so would the password set.
fn string_literal(what: &str, text: &str) -> Result<String, String> {
    if text.contains('\\') || text.chars().any(char::is_control) {
        return Err(format!(
            "the application user's {what} holds a backslash or a control character"
        ));
    }
    Ok(format!("'{}'", text.replace('\'', "''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_quotes_and_refuse_backslashes() {
        assert_eq!(string_literal("p", "a'b").unwrap(), "'a''b'");
        assert!(string_literal("p", "a\\b").is_err());
        assert!(string_literal("p", "a\nb").is_err());
    }

    #[test]
    fn debug_hides_the_password() {
        let user = AppUser {
            username: "kv_app".into(),
            password: "hunter2-secret".into(),
        };
        let shown = format!("{user:?}");
        assert!(
            shown.contains("kv_app") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
