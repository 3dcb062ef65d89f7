-- Users, and the key-value entries each of them owns (SQLite 3.35+; sqlx turns foreign keys on).
-- username_key is the username in lower case: usernames are ASCII, so uniqueness on it is
-- case-insensitive uniqueness of the username. Emails are stored trimmed and lower-cased.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL UNIQUE,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    full_name     TEXT    NOT NULL,
    age           INTEGER NULL,
    gender        TEXT    NOT NULL,
    created_at    TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- TEXT compares with the BINARY collation: keys are compared byte for byte.
CREATE TABLE entries (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    entry_key  TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    created_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (user_id, entry_key)
) WITHOUT ROWID;
