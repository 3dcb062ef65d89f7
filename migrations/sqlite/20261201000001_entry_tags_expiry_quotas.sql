-- Entity tags, expiry and quotas (issue 11). Upgrades a database that already holds entries:
-- each existing entry gets a tag of its own, no expiry, and is counted against its user.

-- etag: 32 hex digits, random per write. value_size: the value's length in bytes (not in
-- characters, hence the cast). expires_at: milliseconds since the Unix epoch, or NULL for never.
ALTER TABLE entries ADD COLUMN etag TEXT NOT NULL DEFAULT '';
ALTER TABLE entries ADD COLUMN value_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entries ADD COLUMN expires_at INTEGER NULL;
UPDATE entries SET etag = lower(hex(randomblob(16))), value_size = length(CAST(value AS BLOB));
CREATE INDEX entries_expires_at ON entries (expires_at);

-- What each user holds, kept by the statements that change entries.
ALTER TABLE users ADD COLUMN entry_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN entry_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE users SET
    entry_count = (SELECT COUNT(*) FROM entries WHERE entries.user_id = users.id),
    entry_bytes = (SELECT COALESCE(SUM(length(CAST(entry_key AS BLOB)) + value_size), 0)
                   FROM entries WHERE entries.user_id = users.id);
