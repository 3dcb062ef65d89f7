//! Migrations on MySQL over the text protocol.
//!
//! sqlx's migration runner reads and writes its `_sqlx_migrations` table with bound parameters,
//! that is with server-side prepared statements, which pin an RDS Proxy session (see
//! [`super::statement`]). This runner does what sqlx's does, step for step and in the same
//! table, with every statement sent as text: the two can take turns on one database (an older
//! `db-migrate` during a deployment waits on the same lock), and a database migrated by either
//! is up to date for the other.

use std::collections::HashMap;

use sqlx::Connection;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::mysql::MySqlConnection;

use super::statement::statement;

/// The name of sqlx's lock for the current database: `0x3d32ad9e` times the CRC-32 of the
/// database's name, in lower-case hexadecimal, as sqlx derives it.
macro_rules! lock_name {
    () => {
        "LOWER(HEX(1026731422 * CRC32(DATABASE())))"
    };
}

/// Takes the lock, waiting at most ten minutes for another migration to finish. (sqlx waits
/// with a timeout of -1, which MySQL reads as "forever" but MariaDB refuses: its lock is
/// taken on MySQL only.)
const LOCK: &str = concat!("SELECT GET_LOCK(", lock_name!(), ", 600)");
const UNLOCK: &str = concat!("SELECT RELEASE_LOCK(", lock_name!(), ")");

/// sqlx's table of applied migrations, as sqlx creates it.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations ( \
     version BIGINT PRIMARY KEY, \
     description TEXT NOT NULL, \
     installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
     success BOOLEAN NOT NULL, \
     checksum BLOB NOT NULL, \
     execution_time BIGINT NOT NULL)";

/// Applies the migrations of `migrator` that `connection`'s database lacks, in order, as
/// [`Migrator::run`] does: under sqlx's lock; refusing a database left dirty by a failed
/// migration, one that holds a migration `migrator` does not know, or one whose applied
/// migration changed since.
pub(super) async fn run(
    migrator: &Migrator,
    connection: &mut MySqlConnection,
) -> Result<(), MigrateError> {
    let (locked,): (Option<i64>,) = statement(LOCK).fetch_one(connection).await?;
    if locked != Some(1) {
        return Err(MigrateError::Execute(sqlx::Error::Protocol(
            "another process has held the migration lock for ten minutes".into(),
        )));
    }
    let applied = apply_missing(migrator, connection).await;
    let unlocked = statement(UNLOCK).execute(connection).await;
    applied?;
    unlocked?;
    Ok(())
}

async fn apply_missing(
    migrator: &Migrator,
    connection: &mut MySqlConnection,
) -> Result<(), MigrateError> {
    statement(CREATE_TABLE).execute(connection).await?;
    let dirty: Option<(i64,)> = statement(
        "SELECT version FROM _sqlx_migrations WHERE success = false ORDER BY version LIMIT 1",
    )
    .fetch_optional(connection)
    .await?;
    if let Some((version,)) = dirty {
        return Err(MigrateError::Dirty(version));
    }
    let applied: HashMap<i64, Vec<u8>> =
        statement("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all::<(i64, Vec<u8>), _>(connection)
            .await?
            .into_iter()
            .collect();
    if !migrator.ignore_missing
        && let Some(version) = applied
            .keys()
            .find(|version| !migrator.iter().any(|known| known.version == **version))
    {
        return Err(MigrateError::VersionMissing(*version));
    }
    for migration in migrator
        .iter()
        .filter(|migration| !migration.migration_type.is_down_migration())
    {
        match applied.get(&migration.version) {
            Some(checksum) if checksum[..] != migration.checksum[..] => {
                return Err(MigrateError::VersionMismatch(migration.version));
            }
            Some(_) => {}
            None => apply(migration, connection).await?,
        }
    }
    Ok(())
}

/// Applies one migration as sqlx does: recorded as unfinished, run, and marked done in one
/// transaction (MySQL commits a schema change at once, so a failure leaves the row unfinished:
/// the database is dirty until someone looks), then its duration recorded.
async fn apply(
    migration: &sqlx::migrate::Migration,
    connection: &mut MySqlConnection,
) -> Result<(), MigrateError> {
    let started = std::time::Instant::now();
    let mut transaction = connection.begin().await?;
    statement(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (?, ?, FALSE, ?, -1)",
    )
    .bind(migration.version)
    .bind(migration.description.as_ref())
    .bind(migration.checksum.as_ref())
    .execute(&mut *transaction)
    .await?;
    sqlx::raw_sql(migration.sql.clone())
        .execute(&mut *transaction)
        .await
        .map_err(|error| MigrateError::ExecuteMigration(error, migration.version))?;
    statement("UPDATE _sqlx_migrations SET success = TRUE WHERE version = ?")
        .bind(migration.version)
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    let nanos = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
    statement("UPDATE _sqlx_migrations SET execution_time = ? WHERE version = ?")
        .bind(nanos)
        .bind(migration.version)
        .execute(connection)
        .await?;
    Ok(())
}
