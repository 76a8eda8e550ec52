-- The credential broker: OAuth providers an admin registered (client
-- secrets sealed) and each user's grant at each (tokens sealed).
CREATE TABLE berth_oauth_providers (
    id            TEXT   NOT NULL PRIMARY KEY,
    config        TEXT   NOT NULL,
    sealed_secret TEXT,
    updated_ms    BIGINT NOT NULL
);
CREATE TABLE berth_oauth_accounts (
    user_id    TEXT   NOT NULL,
    provider   TEXT   NOT NULL,
    sealed     TEXT   NOT NULL,
    status     TEXT   NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, provider)
);
