-- Fields nobody asked for. `unknown_fields` lists the top-level field names producers have sent
-- beyond the six of a login (names only, never values; names that could be values are not kept),
-- for `login-etl status`; at most 64 names are recorded. `extra_fields` holds, with
-- `run --keep-extra-fields`, those fields of a row scrubbed fail-closed like a quarantine body.
CREATE TABLE IF NOT EXISTS unknown_fields (
    name       text PRIMARY KEY,
    first_seen timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE user_logins ADD COLUMN IF NOT EXISTS extra_fields jsonb;
