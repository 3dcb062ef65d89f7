-- Login throttling (issue 12): one row per failed login, counted against both the username and
-- the client address for LOGIN_WINDOW_SECONDS. An attempt in flight holds a row too, until it
-- is known to have succeeded (the username's rows are deleted) or been throttled (its own row is
-- deleted); see shared/src/store/throttle.rs.
-- username_key: hex SHA-256 of the lowercased username as written, so that any name fits.
-- address: the client's IP address as text. failed_at: milliseconds since the Unix epoch.
-- Nothing here ever holds a password.
CREATE TABLE login_failures (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    username_key TEXT    NOT NULL,
    address      TEXT    NOT NULL,
    failed_at    INTEGER NOT NULL
);
CREATE INDEX login_failures_username ON login_failures (username_key, failed_at);
CREATE INDEX login_failures_address ON login_failures (address, failed_at);
CREATE INDEX login_failures_failed_at ON login_failures (failed_at);
