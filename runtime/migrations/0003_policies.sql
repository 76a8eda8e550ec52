-- Per-user tool policies, set through the admin API and layered on each
-- connector's manifest policy.
CREATE TABLE berth_policies (
    connector  TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    policy     TEXT   NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (connector, user_id)
);
