-- Group memberships: set by an admin, or copied from the identity
-- provider's groups claim at each sign-in. Group tool policies key on them.
CREATE TABLE berth_group_members (
    group_name TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    source     TEXT   NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (group_name, user_id, source)
);
