-- Users, and the key-value entries each of them owns (MySQL 8 / MariaDB 10.6+).
-- username_key is the username in lower case: usernames are ASCII, so uniqueness on it is
-- case-insensitive uniqueness of the username. Emails are stored trimmed and lower-cased.
-- Columns compared for uniqueness use binary collations (exact, no accent folding); the
-- others use utf8mb4_unicode_ci, since sqlx decodes binary-collated columns only as bytes.
CREATE TABLE users (
    id            BIGINT       NOT NULL AUTO_INCREMENT,
    username      VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    username_key  VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    email         VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    password_hash VARCHAR(255) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    full_name     VARCHAR(255) NOT NULL,
    age           SMALLINT     NULL,
    gender        VARCHAR(32)  NOT NULL,
    created_at    TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id),
    UNIQUE KEY users_username_key_unique (username_key),
    UNIQUE KEY users_email_unique (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Keys are compared byte for byte: VARBINARY has no collation and no trailing-space padding.
-- 1,020 bytes hold 255 characters of UTF-8; TEXT holds values of up to 65,535 bytes.
CREATE TABLE entries (
    user_id    BIGINT          NOT NULL,
    entry_key  VARBINARY(1020) NOT NULL,
    value      TEXT            NOT NULL,
    created_at TIMESTAMP       NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP       NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (user_id, entry_key),
    CONSTRAINT entries_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
