-- Sessions and refresh tokens (issue 12). Each login starts a session; its access tokens name
-- it (`sid`), and every statement that serves them checks that it has not ended, so that
-- logout, a password change or a reused refresh token rejects them at once.
-- Times are milliseconds since the Unix epoch.
-- expires_at: when the session's newest refresh token expires; after it (or once ended) the
-- scheduled clean-up removes the session, its refresh tokens with it.
CREATE TABLE sessions (
    id         BIGINT NOT NULL AUTO_INCREMENT,
    user_id    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT NULL,
    PRIMARY KEY (id),
    KEY sessions_user (user_id),
    KEY sessions_expires_at (expires_at),
    CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Refresh tokens are kept only as SHA-256 hashes. A used one stays (used_at set) until it
-- expires, so that presenting it again is recognised as reuse.
CREATE TABLE refresh_tokens (
    token_hash BINARY(32) NOT NULL,
    session_id BIGINT     NOT NULL,
    expires_at BIGINT     NOT NULL,
    used_at    BIGINT     NULL,
    PRIMARY KEY (token_hash),
    KEY refresh_tokens_session (session_id),
    KEY refresh_tokens_expires_at (expires_at),
    CONSTRAINT refresh_tokens_session_fk FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
