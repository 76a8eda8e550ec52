-- Tool pinning: each tool definition a connector has shown, by hash.
-- The first definition of a tool is approved on first use; a different one
-- waits, quarantined, until an admin approves it.
CREATE TABLE berth_tool_pins (
    connector  TEXT   NOT NULL,
    tool       TEXT   NOT NULL,
    sha256     TEXT   NOT NULL,
    status     TEXT   NOT NULL,
    definition TEXT   NOT NULL,
    seen_ms    BIGINT NOT NULL,
    PRIMARY KEY (connector, tool, sha256)
);
