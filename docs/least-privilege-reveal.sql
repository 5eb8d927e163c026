-- What `login-etl reveal` needs: read the masked rows, write its audit row. Give it to the few
-- people allowed to recover PII (they also need the masking keys). Replace `analytics`.
CREATE ROLE login_etl_revealer NOLOGIN;
GRANT CONNECT ON DATABASE analytics TO login_etl_revealer;
-- Only the schema's owner creates objects in it (PostgreSQL 14 and older grant CREATE on `public`
-- to every role; see least-privilege.sql).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM login_etl_revealer;
GRANT USAGE ON SCHEMA public TO login_etl_revealer;
GRANT SELECT ON login_etl_schema_migrations TO login_etl_revealer;
GRANT SELECT ON user_logins TO login_etl_revealer;
-- The key ring is checked against the recorded key fingerprints (ids and keyed hashes only).
GRANT SELECT ON mask_key_fingerprints TO login_etl_revealer;
-- The privacy policy in force (migration 21).
GRANT SELECT ON privacy_policy TO login_etl_revealer;
-- Period keys (migration 22), wrapped: revealing a policy's scoped aes-siv values opens them.
GRANT SELECT ON period_keys, shred_horizons TO login_etl_revealer;
-- The audit row: only the columns a client may set. `db_user` and `revealed_at` are stamped by the
-- server (migration 15) whatever is sent, and no role but the owner may UPDATE, DELETE or
-- TRUNCATE the table.
GRANT INSERT (os_user, actor, reason, selector, masks, row_count, subject)
    ON mask_reveals TO login_etl_revealer;
GRANT USAGE ON SEQUENCE mask_reveals_id_seq TO login_etl_revealer;
