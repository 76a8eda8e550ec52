-- Bundles: virtual servers exposing chosen tools of several connectors at
-- /mcp/bundle/{name}. The definition is the admin's JSON document.
CREATE TABLE berth_bundles (
    name       TEXT   NOT NULL PRIMARY KEY,
    definition TEXT   NOT NULL,
    updated_ms BIGINT NOT NULL
);
