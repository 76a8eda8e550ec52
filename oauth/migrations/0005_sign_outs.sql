-- When each offboarded user was signed out everywhere: access tokens and
-- browser sessions issued to them before then are refused.
CREATE TABLE berth_oauth_sign_outs (
    user_id   TEXT   NOT NULL PRIMARY KEY,
    before_ms BIGINT NOT NULL
);
