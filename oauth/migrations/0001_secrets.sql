-- Secrets, sealed with AES-256-GCM; the plaintext never reaches the database.
-- user_id '' is the connector-wide value; a user's own value wins over it.
CREATE TABLE berth_secrets (
    connector  TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    sealed     TEXT   NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (connector, user_id, name)
);
