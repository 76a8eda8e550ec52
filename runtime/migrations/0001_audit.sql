-- One row per tool call: who, what, the policy's decision and the outcome.
-- Never argument values or secrets.
CREATE TABLE berth_audit (
    at_ms       BIGINT NOT NULL,
    user_id     TEXT   NOT NULL,
    client_id   TEXT   NOT NULL,
    connector   TEXT   NOT NULL,
    tool        TEXT   NOT NULL,
    decision    TEXT   NOT NULL,
    outcome     TEXT   NOT NULL,
    error       TEXT   NOT NULL,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX berth_audit_at ON berth_audit (at_ms);
