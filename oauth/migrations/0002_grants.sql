-- Registered clients and live refresh tokens (as hashes), so a restart keeps
-- both. Authorization codes live a minute and stay in memory.
CREATE TABLE berth_oauth_clients (
    client_id TEXT   NOT NULL PRIMARY KEY,
    client    TEXT   NOT NULL,
    issued_ms BIGINT NOT NULL
);
CREATE TABLE berth_oauth_refresh (
    token_hash TEXT   NOT NULL PRIMARY KEY,
    family     TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    resource   TEXT   NOT NULL,
    scope      TEXT   NOT NULL,
    used       BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX berth_oauth_refresh_family ON berth_oauth_refresh (family);
