//! Statements and their parameters, run the way each backend should run them.
//!
//! On SQLite a statement is prepared once per connection and its parameters are bound. On MySQL
//! it is sent as text (`COM_QUERY`), with each parameter written into it as a literal: RDS
//! Proxy pins a client's session to one database connection, for as long as the client stays
//! connected, as soon as it prepares a statement (`COM_STMT_PREPARE`), which sqlx does for every
//! statement with parameters. Written as literals, no input can break out of its place:
//! integers are formatted here, and strings and bytes become hexadecimal literals (`X'…'`),
//! whose digits are all a parser can see. go-sql-driver/mysql's `interpolateParams` does the
//! same.

use std::borrow::Cow;

use sqlx::mysql::{MySql, MySqlConnection};
use sqlx::sqlite::{Sqlite, SqliteConnection};
use sqlx::{AssertSqlSafe, Database, FromRow};

use super::pool::retire_connection_after_use;

/// The longest statement text RDS Proxy lets through without pinning the session: a longer one
/// ("any statement with a text size greater than 16 KB") pins it until the client disconnects,
/// so the connection that sent one is closed after its request.
const PROXY_TEXT_LIMIT: usize = 16 * 1024;

/// A statement's parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Bytes(&'a [u8]),
    /// An entry's key, or a bound of a range of keys: text that MySQL keeps in a `VARBINARY`
    /// column, so it goes as bytes there (compared byte for byte, with no conversion from a
    /// character set), and as text on SQLite, whose column is text.
    Key(&'a str),
}

impl<'a> Param<'a> {
    /// `key` as an entry's key (see [`Param::Key`]).
    pub(crate) fn key(key: &'a str) -> Param<'a> {
        Param::Key(key)
    }
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Param::Int(value)
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(value: Option<i64>) -> Self {
        value.map_or(Param::Null, Param::Int)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Param::Text(value)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(value: &'a String) -> Self {
        Param::Text(value)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(value: &'a [u8]) -> Self {
        Param::Bytes(value)
    }
}

/// A statement to run: SQL whose parameters are `?`, and their values in order.
#[derive(Debug, Clone)]
pub(crate) struct Statement<'a> {
    sql: Cow<'static, str>,
    params: Vec<Param<'a>>,
}

/// A statement of `sql`, whose `?` placeholders [`Statement::bind`] fills in order. The text
/// holds no quote of any kind (it is ours; values are parameters), so each `?` is a
/// placeholder.
pub(crate) fn statement<'a>(sql: impl Into<Cow<'static, str>>) -> Statement<'a> {
    Statement {
        sql: sql.into(),
        params: Vec::new(),
    }
}

impl<'a> Statement<'a> {
    /// The next parameter.
    pub(crate) fn bind(mut self, param: impl Into<Param<'a>>) -> Self {
        self.params.push(param.into());
        self
    }

    /// Runs the statement; what it changed.
    pub(crate) async fn execute<C: Run>(
        self,
        connection: &mut C,
    ) -> Result<<C::Database as Database>::QueryResult, sqlx::Error> {
        connection.execute_statement(self).await
    }

    /// The first row, as a `T`, if there is one.
    pub(crate) async fn fetch_optional<T, C>(
        self,
        connection: &mut C,
    ) -> Result<Option<T>, sqlx::Error>
    where
        C: Run,
        T: for<'r> FromRow<'r, <C::Database as Database>::Row>,
    {
        match connection.fetch_optional_row(self).await? {
            Some(row) => Ok(Some(T::from_row(&row)?)),
            None => Ok(None),
        }
    }

    /// The first row, as a `T`; [`sqlx::Error::RowNotFound`] when there is none.
    pub(crate) async fn fetch_one<T, C>(self, connection: &mut C) -> Result<T, sqlx::Error>
    where
        C: Run,
        T: for<'r> FromRow<'r, <C::Database as Database>::Row>,
    {
        self.fetch_optional(connection)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Every row, as `T`s.
    pub(crate) async fn fetch_all<T, C>(self, connection: &mut C) -> Result<Vec<T>, sqlx::Error>
    where
        C: Run,
        T: for<'r> FromRow<'r, <C::Database as Database>::Row>,
    {
        let rows = connection.fetch_all_rows(self).await?;
        rows.iter().map(|row| T::from_row(row)).collect()
    }

    /// The statement as MySQL text: each placeholder replaced by its parameter's literal.
    fn into_mysql_text(self) -> Result<String, sqlx::Error> {
        let sql = self.sql.as_ref();
        if sql.bytes().any(|byte| matches!(byte, b'\'' | b'"' | b'`')) {
            return Err(sqlx::Error::Protocol(
                "a statement with parameters must not hold quotes".into(),
            ));
        }
        let literals: usize = self.params.iter().map(literal_len).sum();
        let mut text = String::with_capacity(sql.len() + literals);
        let mut params = self.params.iter();
        for (index, piece) in sql.split('?').enumerate() {
            if index > 0 {
                let param = params.next().ok_or_else(|| {
                    sqlx::Error::Protocol(
                        "a statement has more placeholders than parameters".into(),
                    )
                })?;
                write_literal(&mut text, param);
            }
            text.push_str(piece);
        }
        if params.next().is_some() {
            return Err(sqlx::Error::Protocol(
                "a statement has more parameters than placeholders".into(),
            ));
        }
        Ok(text)
    }
}

/// The most bytes [`write_literal`] writes for `param`.
fn literal_len(param: &Param<'_>) -> usize {
    match param {
        Param::Null => 4,
        Param::Int(_) => 22,
        Param::Text(text) => 11 + 2 * text.len(),
        Param::Bytes(bytes) => 3 + 2 * bytes.len(),
        Param::Key(key) => 3 + 2 * key.len(),
    }
}

/// Writes `param` as a MySQL literal: `NULL`; an integer in decimal, in parentheses when
/// negative (so that `- ?` never reads as a comment's `--`); a string as a hexadecimal literal
/// introduced as utf8mb4 (compared with a column, the column's collation applies); bytes and
/// keys as a plain hexadecimal literal, a binary string.
fn write_literal(text: &mut String, param: &Param<'_>) {
    match *param {
        Param::Null => text.push_str("NULL"),
        Param::Int(value) if value < 0 => {
            text.push('(');
            text.push_str(&value.to_string());
            text.push(')');
        }
        Param::Int(value) => text.push_str(&value.to_string()),
        Param::Text(value) => {
            text.push_str("_utf8mb4 ");
            write_hex(text, value.as_bytes());
        }
        Param::Bytes(value) => write_hex(text, value),
        Param::Key(value) => write_hex(text, value.as_bytes()),
    }
}

/// Writes `X'…'` with two hexadecimal digits per byte (`X''` for none).
fn write_hex(text: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    text.push_str("X'");
    for &byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text.push('\'');
}

/// A connection that runs [`Statement`]s: MySQL's as text, SQLite's prepared and bound.
pub(crate) trait Run: Send {
    type Database: Database;

    async fn execute_statement(
        &mut self,
        statement: Statement<'_>,
    ) -> Result<<Self::Database as Database>::QueryResult, sqlx::Error>;

    async fn fetch_optional_row(
        &mut self,
        statement: Statement<'_>,
    ) -> Result<Option<<Self::Database as Database>::Row>, sqlx::Error>;

    async fn fetch_all_rows(
        &mut self,
        statement: Statement<'_>,
    ) -> Result<Vec<<Self::Database as Database>::Row>, sqlx::Error>;
}

/// The MySQL text of `statement`; a text too long for RDS Proxy to leave the session unpinned
/// retires the connection after its request.
fn mysql_text(statement: Statement<'_>) -> Result<AssertSqlSafe<String>, sqlx::Error> {
    let text = statement.into_mysql_text()?;
    if text.len() > PROXY_TEXT_LIMIT {
        retire_connection_after_use();
    }
    Ok(AssertSqlSafe(text))
}

impl Run for MySqlConnection {
    type Database = MySql;

    async fn execute_statement(
        &mut self,
        statement: Statement<'_>,
    ) -> Result<<MySql as Database>::QueryResult, sqlx::Error> {
        sqlx::raw_sql(mysql_text(statement)?).execute(self).await
    }

    async fn fetch_optional_row(
        &mut self,
        statement: Statement<'_>,
    ) -> Result<Option<<MySql as Database>::Row>, sqlx::Error> {
        sqlx::raw_sql(mysql_text(statement)?)
            .fetch_optional(self)
            .await
    }

    async fn fetch_all_rows(
        &mut self,
        statement: Statement<'_>,
    ) -> Result<Vec<<MySql as Database>::Row>, sqlx::Error> {
        sqlx::raw_sql(mysql_text(statement)?).fetch_all(self).await
    }
}

/// `statement` as an sqlx query with its parameters bound: prepared once per connection and
/// cached.
macro_rules! sqlite_query {
    ($statement:expr) => {{
        let Statement { sql, params } = $statement;
        let mut query = match sql {
            Cow::Borrowed(sql) => sqlx::query::<Sqlite>(sql),
            Cow::Owned(sql) => sqlx::query::<Sqlite>(AssertSqlSafe(sql)),
        };
        for param in params {
            query = match param {
                Param::Null => query.bind(None::<i64>),
                Param::Int(value) => query.bind(value),
                Param::Text(value) => query.bind(value),
                Param::Bytes(value) => query.bind(value),
                Param::Key(value) => query.bind(value),
            };
        }
        query
    }};
}

impl Run for SqliteConnection {
    type Database = Sqlite;

    async fn execute_statement(
        &mut self,
        statement: Statement<'_>,
    ) -> Result<<Sqlite as Database>::QueryResult, sqlx::Error> {
        sqlite_query!(statement).execute(self).await
    }

    async fn fetch_optional_row(
        &mut self,
        statement: Statement<'_>,
    ) -> Result<Option<<Sqlite as Database>::Row>, sqlx::Error> {
        sqlite_query!(statement).fetch_optional(self).await
    }

    async fn fetch_all_rows(
        &mut self,
        statement: Statement<'_>,
    ) -> Result<Vec<<Sqlite as Database>::Row>, sqlx::Error> {
        sqlite_query!(statement).fetch_all(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(statement: Statement<'_>) -> String {
        statement.into_mysql_text().unwrap()
    }

    #[test]
    fn integers_are_written_in_decimal_and_negative_ones_in_parentheses() {
        let written = text(
            statement("SELECT ? - ?, ?")
                .bind(41)
                .bind(-1)
                .bind(i64::MIN),
        );
        assert_eq!(written, "SELECT 41 - (-1), (-9223372036854775808)");
    }

    #[test]
    fn strings_and_bytes_become_hexadecimal_literals() {
        let written = text(
            statement("INSERT INTO t VALUES (?, ?, ?, ?)")
                .bind("a'\\\0é")
                .bind("")
                .bind(&[0u8, 0xff][..])
                .bind(None::<i64>),
        );
        assert_eq!(
            written,
            "INSERT INTO t VALUES (_utf8mb4 X'61275C00C3A9', _utf8mb4 X'', X'00FF', NULL)"
        );
    }

    #[test]
    fn keys_become_binary_hexadecimal_literals() {
        let written = text(
            statement("SELECT ? = entry_key, ?")
                .bind(Param::key("a'\\\0é"))
                .bind(Param::key("")),
        );
        assert_eq!(written, "SELECT X'61275C00C3A9' = entry_key, X''");
    }

    #[test]
    fn placeholders_and_parameters_must_pair_up() {
        assert!(statement("SELECT ?").into_mysql_text().is_err());
        assert!(statement("SELECT 1").bind(1).into_mysql_text().is_err());
        assert!(statement("SELECT '?'").bind(1).into_mysql_text().is_err());
    }
}
