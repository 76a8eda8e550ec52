-- One row per published connector version. Rows are never updated except
-- for their status; a version, once published, keeps its manifest forever.
-- Portable SQL: the same file runs on SQLite and PostgreSQL.
CREATE TABLE connector_versions (
    name         TEXT   NOT NULL,
    version      TEXT   NOT NULL,
    -- Publish order within a connector: orders versions that are not semver.
    seq          BIGINT NOT NULL,
    manifest     TEXT   NOT NULL,
    sha256       TEXT   NOT NULL,
    status       TEXT   NOT NULL,
    published_ms BIGINT NOT NULL,
    updated_ms   BIGINT NOT NULL,
    PRIMARY KEY (name, version),
    UNIQUE (name, seq)
);
