-- The instance that served each call, and its arguments (recorded only
-- while an admin has `auditArguments` on, secret-looking values redacted).
ALTER TABLE berth_audit ADD COLUMN instance TEXT NOT NULL DEFAULT '';
ALTER TABLE berth_audit ADD COLUMN arguments TEXT;
-- Settings an admin changes at run time, by name; values are JSON.
CREATE TABLE berth_settings (
    name       TEXT   NOT NULL PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_ms BIGINT NOT NULL
);
