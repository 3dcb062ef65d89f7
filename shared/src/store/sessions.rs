//! Sessions and their refresh tokens: started by a login, rotated by each refresh, ended by a
//! logout, a password change or the reuse of a refresh token.
//!
//! Refresh tokens are stored only as SHA-256 hashes. Using one is a conditional `UPDATE` that
//! marks it used only if it was not yet used, has not expired and its session lives: of several
//! concurrent refreshes with one token, the database lets exactly one through.

use std::time::Duration;

use super::statement::{Run, statement};
use super::{Store, StoreError};

/// The session an access token belongs to: its user and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub user_id: i64,
    pub id: i64,
}

/// What presenting a refresh token came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was valid and is now used; its successor is stored.
    Rotated(Session),
    /// Unknown, expired, already used or of an ended session. `ended_session` tells whether
    /// this presentation ended the session (reuse after the grace period).
    Refused { ended_session: bool },
}

/// Whether a session lives (it has not ended, and its user is still there): asked only when a
/// statement that checks it found nothing, or when a request's input was refused (see
/// [`Store::session_lives`]). Parameters: the session, its user.
pub(super) const SESSION_LIVES: &str =
    "SELECT 1 FROM sessions WHERE id = ? AND user_id = ? AND ended_at IS NULL";

/// Ends every live session of a user (an ended session is removed by the next clean-up).
const END_ALL: &str = "UPDATE sessions SET ended_at = ?, expires_at = ? \
     WHERE user_id = ? AND ended_at IS NULL";

/// A refusal inside a write transaction, which rolls it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Refresh { ended_session: bool },
    SessionEnded,
    PasswordChanged,
}

/// Whether `session` lives, read on `connection` (a transaction's, to tell why a statement
/// that checks the session changed nothing): [`SESSION_LIVES`] found its row.
pub(super) async fn lives_on<C>(connection: &mut C, session: Session) -> Result<bool, sqlx::Error>
where
    C: Run,
    (i64,): for<'r> sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
{
    let row: Option<(i64,)> = statement(SESSION_LIVES)
        .bind(session.id)
        .bind(session.user_id)
        .fetch_optional(connection)
        .await?;
    Ok(row.is_some())
}

impl Store {
    /// Whether `session` lives (it has not ended and its user is still there). Requests that
    /// reach the database learn it from their own statement; this separate read is for the
    /// cases where that statement found nothing, and for requests refused before any.
    pub async fn session_lives(&self, session: Session) -> Result<bool, StoreError> {
        Ok(on_connection!(self, connection => lives_on(connection, session).await)?)
    }

    /// Starts a session for `user_id` whose first refresh token has the hash `refresh_hash` and
    /// expires at `refresh_expires_at` (milliseconds since the epoch).
    pub async fn start_session(
        &self,
        user_id: i64,
        refresh_hash: &[u8],
        now: i64,
        refresh_expires_at: i64,
    ) -> Result<Session, StoreError> {
        const INSERT_SESSION: &str =
            "INSERT INTO sessions (user_id, created_at, expires_at) VALUES (?, ?, ?)";
        const INSERT_TOKEN: &str =
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)";
        let session = on_connection!(self, connection => {
            write_transaction!(connection, transaction => {
                let id = statement(INSERT_SESSION)
                    .bind(user_id)
                    .bind(now)
                    .bind(refresh_expires_at)
                    .execute(&mut *transaction)
                    .await
                    .map(|done| super::NewRowId::new_row_id(&done))?;
                statement(INSERT_TOKEN)
                    .bind(refresh_hash)
                    .bind(id)
                    .bind(refresh_expires_at)
                    .execute(&mut *transaction)
                    .await?;
                Ok(Ok::<_, Refusal>(Session { user_id, id }))
            })
        })?;
        session.map_err(|_| StoreError::SessionEnded)
    }

    /// Uses the refresh token whose hash is `presented`: if it is valid, marks it used and
    /// stores its successor `next_hash`, valid until `next_expires_at`, in one transaction.
    /// A token used more than `reuse_grace` ago ends its session.
    pub async fn refresh_session(
        &self,
        presented: &[u8],
        next_hash: &[u8],
        now: i64,
        next_expires_at: i64,
        reuse_grace: Duration,
    ) -> Result<RefreshOutcome, StoreError> {
        const USE_TOKEN: &str = "UPDATE refresh_tokens SET used_at = ? \
             WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? \
               AND session_id IN (SELECT id FROM sessions WHERE ended_at IS NULL)";
        const SESSION_OF: &str = "SELECT s.id, s.user_id, r.used_at, s.ended_at \
             FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = ?";
        const INSERT_TOKEN: &str =
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)";
        const EXTEND_SESSION: &str = "UPDATE sessions SET expires_at = ? WHERE id = ?";
        const END_SESSION: &str =
            "UPDATE sessions SET ended_at = ?, expires_at = ? WHERE id = ? AND ended_at IS NULL";
        let grace = i64::try_from(reuse_grace.as_millis()).unwrap_or(i64::MAX);
        let outcome = on_connection!(self, connection => {
            write_transaction!(connection, transaction => {
                let used = statement(USE_TOKEN)
                    .bind(now)
                    .bind(presented)
                    .bind(now)
                    .execute(&mut *transaction)
                    .await?
                    .rows_affected()
                    == 1;
                let owner: Option<(i64, i64, Option<i64>, Option<i64>)> = statement(SESSION_OF)
                    .bind(presented)
                    .fetch_optional(&mut *transaction)
                    .await?;
                let Some((session_id, user_id, used_at, ended_at)) = owner else {
                    return Ok(Err(Refusal::Refresh { ended_session: false }));
                };
                if !used {
                    // Used before, outside the grace period of a client that refreshed twice at
                    // once, and the session still lives: a stolen token. End the session; the
                    // ending must stay, so the refusal comes after the commit.
                    let reused = matches!(used_at, Some(used_at) if now.saturating_sub(used_at) >= grace);
                    if reused && ended_at.is_none() {
                        statement(END_SESSION)
                            .bind(now)
                            .bind(now)
                            .bind(session_id)
                            .execute(&mut *transaction)
                            .await?;
                        return Ok(Ok(RefreshOutcome::Refused { ended_session: true }));
                    }
                    return Ok(Err(Refusal::Refresh { ended_session: false }));
                }
                statement(INSERT_TOKEN)
                    .bind(next_hash)
                    .bind(session_id)
                    .bind(next_expires_at)
                    .execute(&mut *transaction)
                    .await?;
                statement(EXTEND_SESSION)
                    .bind(next_expires_at)
                    .bind(session_id)
                    .execute(&mut *transaction)
                    .await?;
                Ok(Ok(RefreshOutcome::Rotated(Session { user_id, id: session_id })))
            })
        })?;
        match outcome {
            Ok(outcome) => Ok(outcome),
            Err(Refusal::Refresh { ended_session }) => {
                Ok(RefreshOutcome::Refused { ended_session })
            }
            Err(_) => Ok(RefreshOutcome::Refused {
                ended_session: false,
            }),
        }
    }

    /// Ends `session`, and with `everywhere` every other session of its user too.
    /// [`StoreError::SessionEnded`] when `session` had already ended.
    pub async fn end_sessions(
        &self,
        session: Session,
        everywhere: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        const END_ONE: &str = "UPDATE sessions SET ended_at = ?, expires_at = ? \
             WHERE id = ? AND user_id = ? AND ended_at IS NULL";
        let outcome = on_connection!(self, connection => {
            write_transaction!(connection, transaction => {
                let ended = statement(END_ONE)
                    .bind(now)
                    .bind(now)
                    .bind(session.id)
                    .bind(session.user_id)
                    .execute(&mut *transaction)
                    .await?
                    .rows_affected();
                if ended == 0 {
                    return Ok(Err(Refusal::SessionEnded));
                }
                if everywhere {
                    statement(END_ALL)
                        .bind(now)
                        .bind(now)
                        .bind(session.user_id)
                        .execute(&mut *transaction)
                        .await?;
                }
                Ok(Ok(()))
            })
        })?;
        outcome.map_err(|_| StoreError::SessionEnded)
    }

    /// The username and password hash of the session's user, if the session lives; else
    /// [`StoreError::SessionEnded`].
    pub async fn session_credentials(
        &self,
        session: Session,
    ) -> Result<(String, String), StoreError> {
        const SELECT: &str = "SELECT u.username, u.password_hash \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = ? AND s.user_id = ? AND s.ended_at IS NULL";
        let credentials: Option<(String, String)> = on_connection!(self, connection =>
            statement(SELECT)
                .bind(session.id)
                .bind(session.user_id)
                .fetch_optional(connection)
                .await)?;
        credentials.ok_or(StoreError::SessionEnded)
    }

    /// Replaces the password hash `old_hash` of the session's user by `new_hash` and ends every
    /// session of the user, if the session still lives and the hash is still `old_hash` (a
    /// concurrent change wins otherwise: [`StoreError::PasswordChanged`]).
    pub async fn change_password(
        &self,
        session: Session,
        old_hash: &str,
        new_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        const CHANGE: &str = "UPDATE users SET password_hash = ? \
             WHERE id = ? AND password_hash = ? \
               AND EXISTS (SELECT 1 FROM sessions \
                           WHERE sessions.id = ? AND sessions.user_id = users.id \
                             AND sessions.ended_at IS NULL)";
        let outcome = on_connection!(self, connection => {
            write_transaction!(connection, transaction => {
                let changed = statement(CHANGE)
                    .bind(new_hash)
                    .bind(session.user_id)
                    .bind(old_hash)
                    .bind(session.id)
                    .execute(&mut *transaction)
                    .await?
                    .rows_affected();
                if changed == 0 {
                    let lives = lives_on(&mut *transaction, session).await?;
                    return Ok(Err(if lives { Refusal::PasswordChanged } else { Refusal::SessionEnded }));
                }
                statement(END_ALL)
                    .bind(now)
                    .bind(now)
                    .bind(session.user_id)
                    .execute(&mut *transaction)
                    .await?;
                Ok(Ok(()))
            })
        })?;
        outcome.map_err(|refusal| match refusal {
            Refusal::PasswordChanged => StoreError::PasswordChanged,
            _ => StoreError::SessionEnded,
        })
    }

    /// Removes up to `limit` sessions that ended or whose refresh tokens have all expired,
    /// and up to `limit` expired refresh tokens; returns how many rows it removed. An access
    /// token of a removed session is refused as one of an ended session.
    pub async fn delete_finished_sessions(&self, now: i64, limit: u32) -> Result<u64, StoreError> {
        const DELETE_SESSIONS: &str = "DELETE FROM sessions WHERE id IN (SELECT id FROM \
             (SELECT id FROM sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?) AS finished)";
        const DELETE_TOKENS: &str = "DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM \
             (SELECT token_hash FROM refresh_tokens WHERE expires_at <= ? ORDER BY expires_at LIMIT ?) AS expired)";
        let removed = on_connection!(self, connection => {
            let sessions = statement(DELETE_SESSIONS)
                .bind(now)
                .bind(i64::from(limit))
                .execute(&mut *connection)
                .await?
                .rows_affected();
            let tokens = statement(DELETE_TOKENS)
                .bind(now)
                .bind(i64::from(limit))
                .execute(&mut *connection)
                .await?
                .rows_affected();
            Ok::<_, sqlx::Error>(sessions + tokens)
        })?;
        Ok(removed)
    }
}
