-- Login throttling (issue 12): one row per failed login, counted against both the username and
-- the client address for LOGIN_WINDOW_SECONDS. An attempt in flight holds a row too, until it
-- is known to have succeeded (the username's rows are deleted) or been throttled (its own row is
-- deleted); see shared/src/store/throttle.rs.
-- username_key: hex SHA-256 of the lowercased username as written, so that any name fits.
-- address: the client's IP address as text (45 characters hold any IPv6 address).
-- failed_at: milliseconds since the Unix epoch. Nothing here ever holds a password.
CREATE TABLE login_failures (
    id           BIGINT      NOT NULL AUTO_INCREMENT,
    username_key CHAR(64)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    address      VARCHAR(45) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    failed_at    BIGINT      NOT NULL,
    PRIMARY KEY (id),
    INDEX login_failures_username (username_key, failed_at),
    INDEX login_failures_address (address, failed_at),
    INDEX login_failures_failed_at (failed_at)
) ENGINE = InnoDB DEFAULT CHARSET = ascii COLLATE = ascii_bin;
