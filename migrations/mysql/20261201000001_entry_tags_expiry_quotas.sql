-- Entity tags, expiry and quotas (issue 11). Upgrades a database that already holds entries:
-- each existing entry gets a tag of its own, no expiry, and is counted against its user.

-- etag: 32 hex digits, random per write (UUID() differs per row here, so no two rows share one).
-- value_size: the value's length in bytes, so that listing and quota accounting never read values.
-- expires_at: milliseconds since the Unix epoch, or NULL for never; its index serves the sweep.
ALTER TABLE entries
    ADD COLUMN etag       CHAR(32) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL DEFAULT '',
    ADD COLUMN value_size INT      NOT NULL DEFAULT 0,
    ADD COLUMN expires_at BIGINT   NULL,
    ADD INDEX entries_expires_at (expires_at);

UPDATE entries SET etag = MD5(CONCAT(UUID(), '/', user_id)), value_size = LENGTH(value);

-- What each user holds, kept by the statements that change entries, so that a quota check is
-- one conditional UPDATE of the user's row rather than a scan of the user's entries.
ALTER TABLE users
    ADD COLUMN entry_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN entry_bytes BIGINT NOT NULL DEFAULT 0;

UPDATE users
    JOIN (SELECT user_id, COUNT(*) AS entry_count, SUM(LENGTH(entry_key) + value_size) AS entry_bytes
          FROM entries GROUP BY user_id) AS held
      ON held.user_id = users.id
    SET users.entry_count = held.entry_count, users.entry_bytes = held.entry_bytes;
