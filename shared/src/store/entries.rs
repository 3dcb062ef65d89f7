//! The entries of users: writes that keep each user's quota counters and entity tags, reads that
//! never see an expired entry, keyset listing, and the sweep of expired entries.
//!
//! Every write is one transaction. The entry's row decides whether the key exists and whether
//! `If-Match` holds, and a conditional `UPDATE` of the user's counters decides the quota, so that
//! neither is ever settled by a read another request could invalidate. Updates and deletes lock
//! the entry's row first, then the user's, and so does the sweep; stores lock the user's row
//! first, since the entry may not exist yet. On MySQL the entry's row is read with `FOR UPDATE`, and a
//! transaction that ends in a deadlock between the two orders is tried again; on SQLite the
//! transaction starts with `BEGIN IMMEDIATE`, which makes writers take turns.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::mysql::MySqlConnection;
use sqlx::sqlite::SqliteConnection;

use super::sessions::{Session, lives_on};
use super::statement::{Param, statement};
use super::{Backend, Store, StoreError, is_unique_violation};
use crate::entity_tag::{EntityTag, TagCondition};
use crate::validation::{Key, Value};

/// How many expired entries one sweep transaction removes.
const SWEEP_BATCH: usize = 500;

/// How much each user may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Most entries per user.
    pub max_keys: i64,
    /// Most bytes per user, counting each entry's key and value.
    pub max_bytes: i64,
}

/// What an update does to an entry's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryChange {
    /// Leaves it as it is.
    Keep,
    /// The entry no longer expires.
    Clear,
    /// The entry expires this long after the update.
    After(Duration),
}

/// A write the store refused, as the contract names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    KeyExists,
    KeyNotFound,
    PreconditionFailed,
    QuotaExceeded,
    SessionEnded,
}

impl From<Refusal> for StoreError {
    fn from(refusal: Refusal) -> StoreError {
        match refusal {
            Refusal::KeyExists => StoreError::KeyExists,
            Refusal::KeyNotFound => StoreError::KeyNotFound,
            Refusal::PreconditionFailed => StoreError::PreconditionFailed,
            Refusal::QuotaExceeded => StoreError::QuotaExceeded,
            Refusal::SessionEnded => StoreError::SessionEnded,
        }
    }
}

/// An entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntry {
    pub key: String,
    pub etag: EntityTag,
    /// The value's length in bytes.
    pub size: i64,
    /// When it expires, in milliseconds since the Unix epoch.
    pub expires_at: Option<i64>,
}

/// A page of a listing with a prefix, if the session lives: one range of the primary key,
/// `(user_id, entry_key)` from after the cursor and the prefix to the prefix's upper bound;
/// expired rows in it are skipped, never counted. The session's check is a condition that does
/// not depend on the row, evaluated once; an empty page is told apart from an ended session by
/// [`SESSION_LIVES`].
const LIST_BOUNDED: &str = "SELECT entry_key, etag, value_size, expires_at FROM entries \
     WHERE user_id = ? AND entry_key > ? AND entry_key >= ? AND entry_key < ? \
       AND (expires_at IS NULL OR expires_at > ?) \
       AND EXISTS (SELECT 1 FROM sessions WHERE id = ? AND user_id = ? AND ended_at IS NULL) \
     ORDER BY entry_key LIMIT ?";

/// [`LIST_BOUNDED`] for a prefix that has no upper bound (the empty one).
const LIST_UNBOUNDED: &str = "SELECT entry_key, etag, value_size, expires_at FROM entries \
     WHERE user_id = ? AND entry_key > ? AND entry_key >= ? \
       AND (expires_at IS NULL OR expires_at > ?) \
       AND EXISTS (SELECT 1 FROM sessions WHERE id = ? AND user_id = ? AND ended_at IS NULL) \
     ORDER BY entry_key LIMIT ?";

/// Reads an entry for a write, `$suffix` after, with whether its session lives: the subquery
/// reads the session's row without locking it (a locking read locks only the outer table's
/// rows), so that concurrent writes of one session do not queue on it. No row: the key is not
/// there ([`SESSION_LIVES`] then tells 404 from 401). Parameters: the session, its user, the
/// user again and the key.
macro_rules! concat_session_entry {
    ($suffix:literal) => {
        concat!(
            "SELECT etag, value_size, expires_at, \
               EXISTS (SELECT 1 FROM sessions WHERE id = ? AND user_id = ? AND ended_at IS NULL) \
             FROM entries WHERE user_id = ? AND entry_key = ?",
            $suffix
        )
    };
}

/// The entries a sweep batch looks at: a range of the index on `expires_at`, read without
/// locks.
const SWEEP_CANDIDATES: &str = "SELECT user_id, entry_key FROM entries \
     WHERE expires_at <= ? ORDER BY expires_at LIMIT ?";

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// `duration` after `now`, in milliseconds since the epoch (saturating).
pub fn millis_after(now: i64, duration: Duration) -> i64 {
    now.saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

/// How each backend reads an entry for a write, with its session (`concat_session_entry!`):
/// the rows stay locked until the transaction ends.
trait SelectForWrite {
    const SELECT_ENTRY_FOR_WRITE: &'static str;
    /// The entry alone, for a store whose transaction has already checked the session: locking
    /// the session's row too would wait for the shared lock that another store's check holds
    /// on it, while that store waits for this one's user row.
    const SELECT_STORED_ENTRY_FOR_WRITE: &'static str;
}

impl SelectForWrite for MySqlConnection {
    const SELECT_ENTRY_FOR_WRITE: &'static str = concat_session_entry!(" FOR UPDATE");
    const SELECT_STORED_ENTRY_FOR_WRITE: &'static str = "SELECT etag, value_size, expires_at FROM entries \
         WHERE user_id = ? AND entry_key = ? FOR UPDATE";
}

impl SelectForWrite for SqliteConnection {
    const SELECT_ENTRY_FOR_WRITE: &'static str = concat_session_entry!("");
    const SELECT_STORED_ENTRY_FOR_WRITE: &'static str =
        "SELECT etag, value_size, expires_at FROM entries WHERE user_id = ? AND entry_key = ?";
}

fn select_entry_for_write<C: SelectForWrite>(_: &C) -> &'static str {
    C::SELECT_ENTRY_FOR_WRITE
}

fn select_stored_entry_for_write<C: SelectForWrite>(_: &C) -> &'static str {
    C::SELECT_STORED_ENTRY_FOR_WRITE
}

/// Adds to a user's counters, if the quota allows and the session lives: the row is changed
/// (and the statement counts one row) only when each counter that grows stays within its
/// limit and the session has not ended.
const CHARGE_USER: &str = "UPDATE users \
     SET entry_count = entry_count + ?, entry_bytes = entry_bytes + ? \
     WHERE id = ? AND (? <= 0 OR entry_count + ? <= ?) AND (? <= 0 OR entry_bytes + ? <= ?) \
       AND EXISTS (SELECT 1 FROM sessions \
                   WHERE sessions.id = ? AND sessions.user_id = users.id AND sessions.ended_at IS NULL)";

/// Binds [`CHARGE_USER`]'s parameters.
macro_rules! charge_user {
    ($session:expr, $keys:expr, $bytes:expr, $quota:expr) => {
        statement(CHARGE_USER)
            .bind($keys)
            .bind($bytes)
            .bind($session.user_id)
            .bind($keys)
            .bind($keys)
            .bind($quota.max_keys)
            .bind($bytes)
            .bind($bytes)
            .bind($quota.max_bytes)
            .bind($session.id)
    };
}

/// Whether `$session` has ended (or its user is gone), read in `$transaction`: asked only to
/// tell why a statement that checks the session changed nothing.
macro_rules! session_ended {
    ($transaction:ident, $session:expr) => {
        !lives_on(&mut *$transaction, $session).await?
    };
}

/// The size and expiry of an entry read for an update or a delete (its tag, size and expiry, if
/// the row exists), or why the write cannot go on: the entry is missing or expired (in that
/// order before the precondition, as the contract checks them), or its tag fails `if_match`.
fn writable(
    held: Option<(String, i64, Option<i64>)>,
    now: i64,
    if_match: Option<&TagCondition>,
) -> Result<(i64, Option<i64>), Refusal> {
    match held {
        None => Err(Refusal::KeyNotFound),
        Some((_, _, Some(expired_at))) if expired_at <= now => Err(Refusal::KeyNotFound),
        Some((tag, size, expires_at)) => {
            if let Some(condition) = if_match
                && !condition.matches_strongly(&EntityTag::from_stored(tag))
            {
                Err(Refusal::PreconditionFailed)
            } else {
                Ok((size, expires_at))
            }
        }
    }
}

/// Reads the session's entry of `$key` in `$transaction` with `$select` (the backend's
/// `SELECT_ENTRY_FOR_WRITE`): its tag, size and expiry, if the row exists; refuses the write
/// when the session has ended.
macro_rules! read_entry {
    ($transaction:ident, $select:expr, $session:expr, $key:expr) => {{
        let row: Option<(String, i64, Option<i64>, bool)> = statement($select)
            .bind($session.id)
            .bind($session.user_id)
            .bind($session.user_id)
            .bind(Param::key($key.as_str()))
            .fetch_optional(&mut *$transaction)
            .await?;
        match row {
            Some((_, _, _, false)) => return Ok(Err(Refusal::SessionEnded)),
            Some((etag, size, expires_at, true)) => Some((etag, size, expires_at)),
            None if session_ended!($transaction, $session) => {
                return Ok(Err(Refusal::SessionEnded));
            }
            None => None,
        }
    }};
}

/// Runs `$statement`, an UPDATE of an entry's value, size, tag and expiry, with its parameters.
macro_rules! rewrite_entry {
    ($transaction:ident, $statement:expr, $user_id:expr, $key:expr, $value:expr, $size:expr, $etag:expr, $expires_at:expr) => {
        statement($statement)
            .bind($value.as_str())
            .bind($size)
            .bind($etag.as_stored())
            .bind($expires_at)
            .bind($user_id)
            .bind(Param::key($key.as_str()))
            .execute(&mut *$transaction)
            .await?
    };
}

/// The bytes an entry counts against its user's quota.
fn quota_bytes(key: &Key, value_size: i64) -> i64 {
    key.as_str().len() as i64 + value_size
}

impl Store {
    /// Stores a new entry of the user's, expiring `ttl` from now if given, and returns its tag.
    /// A key the user holds (unexpired) is [`StoreError::KeyExists`]; one that would take the
    /// user past `quota` is [`StoreError::QuotaExceeded`]; an expired entry of the key is
    /// replaced.
    pub async fn insert_entry(
        &self,
        session: Session,
        key: &Key,
        value: &Value,
        ttl: Option<Duration>,
        quota: &Quota,
    ) -> Result<EntityTag, StoreError> {
        const INSERT: &str = "INSERT INTO entries \
             (user_id, entry_key, value, value_size, etag, expires_at) VALUES (?, ?, ?, ?, ?, ?)";
        const REPLACE_EXPIRED: &str = "UPDATE entries \
             SET value = ?, value_size = ?, etag = ?, expires_at = ?, \
                 created_at = CURRENT_TIMESTAMP, updated_at = CURRENT_TIMESTAMP \
             WHERE user_id = ? AND entry_key = ?";
        let etag = EntityTag::generate();
        let now = now_millis();
        let expires_at = ttl.map(|ttl| millis_after(now, ttl));
        let size = value.as_str().len() as i64;
        let bytes = quota_bytes(key, size);
        let outcome = on_connection!(self, connection => {
            let select_stored = select_stored_entry_for_write(connection);
            write_transaction!(connection, transaction => {
                // The user's row first, as every store takes it: concurrent stores of one user
                // take turns here rather than deadlock on the foreign key's shared lock. On
                // MySQL the row stays locked even when the quota condition fails.
                let charged = charge_user!(session, 1i64, bytes, quota)
                    .execute(&mut *transaction)
                    .await?
                    .rows_affected()
                    > 0;
                if !charged && session_ended!(transaction, session) {
                    return Ok(Err(Refusal::SessionEnded));
                }
                let inserted = statement(INSERT)
                    .bind(session.user_id)
                    .bind(Param::key(key.as_str()))
                    .bind(value.as_str())
                    .bind(size)
                    .bind(etag.as_stored())
                    .bind(expires_at)
                    .execute(&mut *transaction)
                    .await;
                match inserted {
                    Ok(_) if charged => Ok(Ok(())),
                    Ok(_) => Ok(Err(Refusal::QuotaExceeded)),
                    Err(error) if !is_unique_violation(&error) => Err(error),
                    Err(_) => {
                        // The key is taken, and free again only if its entry has expired.
                        let held: Option<(String, i64, Option<i64>)> = statement(select_stored)
                            .bind(session.user_id)
                            .bind(Param::key(key.as_str()))
                            .fetch_optional(&mut *transaction)
                            .await?;
                        let old_size = match held {
                            Some((_, old_size, Some(expired_at))) if expired_at <= now => old_size,
                            _ => return Ok(Err(Refusal::KeyExists)),
                        };
                        // The user holds the difference only: take back the first charge, or
                        // make the one that failed.
                        let old_bytes = quota_bytes(key, old_size);
                        let (keys_added, bytes_added) =
                            if charged { (-1i64, -old_bytes) } else { (0, bytes - old_bytes) };
                        let recharged = charge_user!(session, keys_added, bytes_added, quota)
                            .execute(&mut *transaction)
                            .await?
                            .rows_affected();
                        if recharged == 0 {
                            return Ok(Err(Refusal::QuotaExceeded));
                        }
                        rewrite_entry!(transaction, REPLACE_EXPIRED, session.user_id, key, value, size, &etag, expires_at);
                        Ok(Ok(()))
                    }
                }
            })
        })?;
        outcome?;
        Ok(etag)
    }

    /// The value and tag of the session user's entry, if the user holds that key and it has
    /// not expired; [`StoreError::SessionEnded`] when the session has ended. One statement
    /// whatever the answer: the session's row, joined with the entry when there is one, so
    /// that no row means an ended session and a row without an entry a missing key. The
    /// expiry is compared here, which costs MariaDB less than a condition in the join.
    /// bench/run.sh runs this statement's MySQL text raw beside the point select: keep both alike.
    pub async fn get_entry(
        &self,
        session: Session,
        key: &Key,
    ) -> Result<Option<(String, EntityTag)>, StoreError> {
        const SELECT: &str = "SELECT entries.value, entries.etag, entries.expires_at FROM sessions \
             LEFT JOIN entries ON entries.user_id = ? AND entries.entry_key = ? \
             WHERE sessions.id = ? AND sessions.user_id = ? AND sessions.ended_at IS NULL";
        let now = now_millis();
        let row: Option<(Option<String>, Option<String>, Option<i64>)> = on_connection!(self, connection =>
                statement(SELECT)
                    .bind(session.user_id)
                    .bind(Param::key(key.as_str()))
                    .bind(session.id)
                    .bind(session.user_id)
                    .fetch_optional(connection)
                    .await)?;
        match row {
            None => Err(StoreError::SessionEnded),
            Some((Some(value), Some(etag), expires_at))
                if expires_at.is_none_or(|expires_at| expires_at > now) =>
            {
                Ok(Some((value, EntityTag::from_stored(etag))))
            }
            Some(_) => Ok(None),
        }
    }

    /// Replaces the value of the user's entry and changes its expiry, if the entry exists
    /// (unexpired), its tag satisfies `if_match` when given, and the new size fits `quota`.
    /// Returns the entry's new tag.
    pub async fn update_entry(
        &self,
        session: Session,
        key: &Key,
        value: &Value,
        expiry: ExpiryChange,
        if_match: Option<&TagCondition>,
        quota: &Quota,
    ) -> Result<EntityTag, StoreError> {
        const UPDATE: &str = "UPDATE entries \
             SET value = ?, value_size = ?, etag = ?, expires_at = ?, updated_at = CURRENT_TIMESTAMP \
             WHERE user_id = ? AND entry_key = ?";
        let etag = EntityTag::generate();
        let now = now_millis();
        let size = value.as_str().len() as i64;
        let outcome = on_connection!(self, connection => {
            let select_for_write = select_entry_for_write(connection);
            write_transaction!(connection, transaction => {
                let held = read_entry!(transaction, select_for_write, session, key);
                let (old_size, old_expiry) = match writable(held, now, if_match) {
                    Ok(held) => held,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let bytes_added = size - old_size;
                if bytes_added != 0 {
                    let charged = charge_user!(session, 0i64, bytes_added, quota)
                        .execute(&mut *transaction)
                        .await?
                        .rows_affected();
                    if charged == 0 {
                        return Ok(Err(Refusal::QuotaExceeded));
                    }
                }
                let expires_at = match expiry {
                    ExpiryChange::Keep => old_expiry,
                    ExpiryChange::Clear => None,
                    ExpiryChange::After(ttl) => Some(millis_after(now, ttl)),
                };
                rewrite_entry!(transaction, UPDATE, session.user_id, key, value, size, &etag, expires_at);
                Ok(Ok(()))
            })
        })?;
        outcome?;
        Ok(etag)
    }

    /// Deletes the user's entry, if it exists (unexpired) and its tag satisfies `if_match`
    /// when given; what it held stops counting against the user's quota.
    pub async fn delete_entry(
        &self,
        session: Session,
        key: &Key,
        if_match: Option<&TagCondition>,
    ) -> Result<(), StoreError> {
        const DELETE: &str = "DELETE FROM entries WHERE user_id = ? AND entry_key = ?";
        const RELEASE: &str = "UPDATE users \
             SET entry_count = entry_count - 1, entry_bytes = entry_bytes - ? WHERE id = ?";
        let now = now_millis();
        let outcome = on_connection!(self, connection => {
            let select_for_write = select_entry_for_write(connection);
            write_transaction!(connection, transaction => {
                let held = read_entry!(transaction, select_for_write, session, key);
                let size = match writable(held, now, if_match) {
                    Ok((size, _)) => size,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                statement(DELETE)
                    .bind(session.user_id)
                    .bind(Param::key(key.as_str()))
                    .execute(&mut *transaction)
                    .await?;
                statement(RELEASE)
                    .bind(quota_bytes(key, size))
                    .bind(session.user_id)
                    .execute(&mut *transaction)
                    .await?;
                Ok(Ok(()))
            })
        })?;
        Ok(outcome?)
    }

    /// Up to `limit` of the session user's unexpired entries, in ascending byte order of their
    /// keys: those after `after` (all when `None`) that start with `prefix`; or
    /// [`StoreError::SessionEnded`]. One range scan of the primary key, and a second statement
    /// only when the page is empty.
    pub async fn list_entries(
        &self,
        session: Session,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ListedEntry>, StoreError> {
        let after = after.unwrap_or("");
        let upper = prefix_upper_bound(prefix);
        let now = now_millis();
        type Row = (Vec<u8>, String, i64, Option<i64>);
        let rows: Vec<Row> = match &upper {
            Some(upper) => on_connection!(self, connection => statement(LIST_BOUNDED)
                .bind(session.user_id)
                .bind(Param::key(after))
                .bind(Param::key(prefix))
                .bind(Param::key(upper.as_str()))
                .bind(now)
                .bind(session.id)
                .bind(session.user_id)
                .bind(i64::from(limit))
                .fetch_all(connection)
                .await)?,
            None => on_connection!(self, connection => statement(LIST_UNBOUNDED)
                .bind(session.user_id)
                .bind(Param::key(after))
                .bind(Param::key(prefix))
                .bind(now)
                .bind(session.id)
                .bind(session.user_id)
                .bind(i64::from(limit))
                .fetch_all(connection)
                .await)?,
        };
        if rows.is_empty() && !self.session_lives(session).await? {
            return Err(StoreError::SessionEnded);
        }
        rows.into_iter()
            .map(|(key, etag, size, expires_at)| {
                Ok(ListedEntry {
                    key: stored_key(key)?,
                    etag: EntityTag::from_stored(etag),
                    size,
                    expires_at,
                })
            })
            .collect()
    }

    /// Removes up to 500 entries that expired before `now` (milliseconds since the
    /// epoch) in one short transaction, and stops counting them against their users. Returns
    /// how many it removed: 0 when none was left.
    ///
    /// The candidates are found without locks, through the index on `expires_at`, then locked
    /// by primary key; an entry is removed only if still expired, so that one a store replaced
    /// meanwhile stays, and no range of the index is ever locked against writers. The users'
    /// counters come last, in one statement, so that their rows (which every store of those
    /// users waits for) stay locked only from that statement to the commit.
    pub async fn sweep_expired_batch(&self, now: i64) -> Result<usize, StoreError> {
        let candidates: Vec<(i64, Vec<u8>)> = on_connection!(self, connection =>
            statement(SWEEP_CANDIDATES)
                .bind(now)
                .bind(SWEEP_BATCH as i64)
                .fetch_all(connection)
                .await)?;
        let candidates = candidates
            .into_iter()
            .map(|(user_id, key)| Ok((user_id, stored_key(key)?)))
            .collect::<Result<Vec<(i64, String)>, StoreError>>()?;
        let Some(last) = candidates.last() else {
            return Ok(0);
        };
        // Always SWEEP_BATCH pairs, the last repeated, so that each statement has one text
        // (and one prepared statement) whatever the batch holds.
        let padded: Vec<&(i64, String)> = candidates
            .iter()
            .chain(std::iter::repeat(last))
            .take(SWEEP_BATCH)
            .collect();
        let lock_entries = match self.backend() {
            Backend::MySql => &*MYSQL_SWEEP.lock_entries,
            Backend::Sqlite => &*SQLITE_SWEEP.lock_entries,
        };
        let (delete, release) = (&*SQLITE_SWEEP.delete, &*SQLITE_SWEEP.release);
        let deleted = on_connection!(self, connection => {
            write_transaction!(connection, transaction => {
                let mut locking = statement(lock_entries);
                for (user_id, key) in &padded {
                    locking = locking.bind(*user_id).bind(Param::key(key.as_str()));
                }
                let expired: Vec<(i64, Vec<u8>, i64)> =
                    locking.bind(now).fetch_all(&mut *transaction).await?;
                let Some(first) = expired.first() else {
                    return Ok(Ok::<_, Refusal>(0));
                };
                let mut deleting = statement(delete);
                for (user_id, key, _) in expired.iter().chain(std::iter::repeat(first)).take(SWEEP_BATCH) {
                    // As text: SQLite never finds a text key equal to a blob.
                    let key = std::str::from_utf8(key).map_err(|error| sqlx::Error::Decode(error.into()))?;
                    deleting = deleting.bind(*user_id).bind(Param::key(key));
                }
                deleting.bind(now).execute(&mut *transaction).await?;
                let mut released: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
                for (user_id, key, size) in &expired {
                    let counts = released.entry(*user_id).or_default();
                    counts.0 += 1;
                    counts.1 += key.len() as i64 + size;
                }
                let padded_release: Vec<(i64, i64, i64)> = released
                    .iter()
                    .map(|(user_id, (keys, bytes))| (*user_id, *keys, *bytes))
                    .chain(std::iter::repeat((first.0, 0, 0)))
                    .take(SWEEP_BATCH)
                    .collect();
                let mut releasing = statement(release);
                for (user_id, keys, _) in &padded_release {
                    releasing = releasing.bind(*user_id).bind(*keys);
                }
                for (user_id, _, bytes) in &padded_release {
                    releasing = releasing.bind(*user_id).bind(*bytes);
                }
                for (user_id, _, _) in &padded_release {
                    releasing = releasing.bind(*user_id);
                }
                releasing.execute(&mut *transaction).await?;
                Ok(Ok(expired.len()))
            })
        })?;
        Ok(deleted?)
    }
}

/// The sweep's statements of one backend, each with [`SWEEP_BATCH`] placeholders (or pairs).
struct SweepStatements {
    lock_entries: String,
    delete: String,
    release: String,
}

impl SweepStatements {
    /// The statements, with `lock` (` FOR UPDATE` or nothing) after the locking reads.
    fn new(lock: &str) -> SweepStatements {
        SweepStatements {
            lock_entries: format!(
                "{}{lock}",
                sweep_statement("SELECT user_id, entry_key, value_size FROM entries WHERE (")
            ),
            delete: sweep_statement("DELETE FROM entries WHERE ("),
            release: release_statement(),
        }
    }
}

static MYSQL_SWEEP: LazyLock<SweepStatements> =
    LazyLock::new(|| SweepStatements::new(" FOR UPDATE"));
static SQLITE_SWEEP: LazyLock<SweepStatements> = LazyLock::new(|| SweepStatements::new(""));

/// A key read back from the database, where it was stored as UTF-8.
fn stored_key(key: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(key)
        .map_err(|_| StoreError::Database(sqlx::Error::Decode("a stored key is not UTF-8".into())))
}

/// `start` followed by [`SWEEP_BATCH`] primary-key matches joined by `OR`, and the condition
/// that the entry is still expired.
fn sweep_statement(start: &str) -> String {
    let matches = vec!["(user_id = ? AND entry_key = ?)"; SWEEP_BATCH].join(" OR ");
    format!("{start}{matches}) AND expires_at <= ?")
}

/// One `UPDATE` that lowers the counters of [`SWEEP_BATCH`] users, each by its own amounts:
/// `(user, keys)` pairs, then `(user, bytes)` pairs, then the users. A user repeated as padding
/// after its pairs changes nothing, since the first matching `WHEN` wins.
fn release_statement() -> String {
    let cases = vec!["WHEN ? THEN ?"; SWEEP_BATCH].join(" ");
    let users = vec!["?"; SWEEP_BATCH].join(", ");
    format!(
        "UPDATE users SET entry_count = entry_count - CASE id {cases} ELSE 0 END, \
         entry_bytes = entry_bytes - CASE id {cases} ELSE 0 END WHERE id IN ({users})"
    )
}

/// The least string greater than every string that starts with `prefix`, in byte order (which
/// for UTF-8 is code point order): `prefix` with its last character replaced by the next one,
/// after dropping trailing characters that have no next one. `None` when every string is
/// below it (an empty prefix).
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::mysql::MySqlConnectOptions;
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{AssertSqlSafe, Connection, Executor, Row};

    use super::*;
    use crate::store::{ConnectOptions, PoolSettings};

    const SETTINGS: PoolSettings = PoolSettings {
        max_connections: 1,
        max_idle_connections: 1,
        acquire_timeout: Duration::from_secs(5),
    };

    /// Two users with two sessions each, and 2,000 entries of theirs, one in twenty expired,
    /// the rest without expiry: enough rows for the planners to prefer an index to a scan when
    /// one serves.
    const FILL: &str = "INSERT INTO users (id, username, username_key, email, password_hash, \
             full_name, gender) VALUES (1, 'a', 'a', 'a@x.io', 'x', 'A', 'f'), \
             (2, 'b', 'b', 'b@x.io', 'x', 'B', 'f'); \
         INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES (1, 1, 0, 9000000000000), \
         (2, 2, 0, 9000000000000), (3, 1, 0, 9000000000000), (4, 2, 0, 9000000000000)";

    fn fill_entries() -> String {
        let rows: Vec<String> = (0..2000)
            .map(|n| {
                let expiry = if n % 20 == 0 { "1000" } else { "NULL" };
                format!("({}, 'k{n:05}', 'v', 1, 'tag', {expiry})", n % 2 + 1)
            })
            .collect();
        format!(
            "INSERT INTO entries (user_id, entry_key, value, value_size, etag, expires_at) VALUES {}",
            rows.join(", ")
        )
    }

    /// The plan lines of `statement`, with `EXPLAIN` (MySQL) or `EXPLAIN QUERY PLAN` (SQLite)
    /// in front, its parameters bound to `user_id = 1` and keys and times that select rows.
    macro_rules! explain {
        ($connection:expr, $explain:literal, $statement:expr, $binds:expr) => {{
            let mut query = sqlx::query(AssertSqlSafe(format!("{} {}", $explain, $statement)));
            for bind in $binds {
                query = query.bind(bind);
            }
            query.fetch_all(&mut $connection).await.unwrap()
        }};
    }

    #[tokio::test]
    async fn on_sqlite_the_sweep_and_listing_read_index_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("kv.db").display());
        let store = Store::connect_lazy(ConnectOptions::from_url(&url).unwrap(), &SETTINGS);
        store.migrate().await.unwrap();
        let mut connection =
            SqliteConnection::connect_with(&SqliteConnectOptions::from_str(&url).unwrap())
                .await
                .unwrap();
        connection.execute(FILL).await.unwrap();
        connection
            .execute(AssertSqlSafe(fill_entries()))
            .await
            .unwrap();
        connection.execute("ANALYZE").await.unwrap();

        let detail = |rows: Vec<sqlx::sqlite::SqliteRow>| -> String {
            rows.iter()
                .map(|row| row.get::<String, _>("detail"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let sweep = detail(explain!(
            connection,
            "EXPLAIN QUERY PLAN",
            SWEEP_CANDIDATES,
            ["2000", "500"]
        ));
        assert_eq!(
            sweep,
            "SEARCH entries USING COVERING INDEX entries_expires_at (expires_at<?)"
        );
        let list = detail(explain!(
            connection,
            "EXPLAIN QUERY PLAN",
            LIST_BOUNDED,
            ["1", "", "k", "l", "2000", "1", "1", "101"]
        ));
        assert_eq!(
            list,
            "SEARCH entries USING PRIMARY KEY (user_id=? AND entry_key>? AND entry_key<?); \
             BLOOM FILTER ON sessions (id=?); \
             SEARCH sessions EXISTS USING INTEGER PRIMARY KEY (rowid=?)"
        );
        let list = detail(explain!(
            connection,
            "EXPLAIN QUERY PLAN",
            LIST_UNBOUNDED,
            ["1", "", "", "2000", "1", "1", "101"]
        ));
        assert_eq!(
            list,
            "SEARCH entries USING PRIMARY KEY (user_id=? AND entry_key>?); \
             BLOOM FILTER ON sessions (id=?); \
             SEARCH sessions EXISTS USING INTEGER PRIMARY KEY (rowid=?)"
        );
    }

    /// The test server of `scripts/test.sh`; required under CI.
    #[tokio::test]
    async fn on_mysql_the_sweep_and_listing_read_index_ranges() {
        let Some(server) = test_support::mysql_server_url("store::entries::tests::on_mysql") else {
            return;
        };
        let name = test_support::create_mysql_database(&server, "kv_plan").await;
        let mut admin = MySqlConnection::connect(&server).await.unwrap();
        let url = format!("{server}/{name}");
        let store = Store::connect_lazy(ConnectOptions::from_url(&url).unwrap(), &SETTINGS);
        store.migrate().await.unwrap();
        let mut connection =
            MySqlConnection::connect_with(&MySqlConnectOptions::from_str(&url).unwrap())
                .await
                .unwrap();
        connection.execute(FILL).await.unwrap();
        connection
            .execute(AssertSqlSafe(fill_entries()))
            .await
            .unwrap();
        connection.execute("ANALYZE TABLE entries").await.unwrap();

        // (type, key) of each table the plan reads; no step sorts.
        let access = |rows: Vec<sqlx::mysql::MySqlRow>| -> Vec<(String, String)> {
            rows.iter()
                .map(|row| {
                    let text = |column: &str| {
                        row.try_get::<Option<String>, _>(column)
                            .ok()
                            .flatten()
                            .or_else(|| {
                                row.try_get::<Option<Vec<u8>>, _>(column)
                                    .ok()
                                    .flatten()
                                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                            })
                            .unwrap_or_default()
                    };
                    assert!(!text("Extra").contains("filesort"), "{}", text("Extra"));
                    (text("type"), text("key"))
                })
                .collect()
        };
        let range = |key: &str| vec![("range".to_owned(), key.to_owned())];
        // A range of the entries' primary key, and the session's row by its key, once.
        let range_and_session = vec![
            ("range".to_owned(), "PRIMARY".to_owned()),
            ("const".to_owned(), "PRIMARY".to_owned()),
        ];
        let sweep = access(explain!(
            connection,
            "EXPLAIN",
            SWEEP_CANDIDATES,
            ["2000", "500"]
        ));
        assert_eq!(sweep, range("entries_expires_at"));
        let list = access(explain!(
            connection,
            "EXPLAIN",
            LIST_BOUNDED,
            ["1", "", "k", "l", "2000", "1", "1", "101"]
        ));
        assert_eq!(list, range_and_session);
        let list = access(explain!(
            connection,
            "EXPLAIN",
            LIST_UNBOUNDED,
            ["1", "", "", "2000", "1", "1", "101"]
        ));
        assert_eq!(list, range_and_session);
        store.close().await;
        admin
            .execute(AssertSqlSafe(format!("DROP DATABASE `{name}`")))
            .await
            .unwrap();
    }

    #[test]
    fn the_upper_bound_of_a_prefix_is_above_every_string_it_starts() {
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("ab").as_deref(), Some("ac"));
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        let upper = prefix_upper_bound("ké").unwrap();
        for key in ["ké", "ké\u{10FFFF}", "kéz"] {
            assert!(key.as_bytes() < upper.as_bytes(), "{key}");
        }
        assert!("kê".as_bytes() >= upper.as_bytes());
    }
}
