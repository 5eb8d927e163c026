-- The least privilege `login-etl run` needs, once `login-etl migrate` has been run by the owner of
-- the schema (e.g. as a deploy step). Replace `analytics` with your database; set a password or use
-- IAM authentication for the role.
CREATE ROLE login_etl_writer NOLOGIN;
GRANT CONNECT ON DATABASE analytics TO login_etl_writer;
GRANT USAGE ON SCHEMA public TO login_etl_writer;
-- Checking the schema version at start.
GRANT SELECT ON login_etl_schema_migrations TO login_etl_writer;
-- Rows (COPY needs INSERT only).
GRANT INSERT ON user_logins TO login_etl_writer;
-- Ledger and quarantine: `ON CONFLICT (message_id)` and `RETURNING message_id` need SELECT on
-- that column, and the quarantine insert returns its reason codes for the metrics (ids and codes
-- only: no login data is readable).
GRANT INSERT, SELECT (message_id) ON processed_messages TO login_etl_writer;
GRANT INSERT, SELECT (message_id, reason_code) ON quarantined_messages TO login_etl_writer;
-- Solo attempts of suspect messages (ids and counters only): recorded, counted, cleared on commit.
GRANT INSERT, UPDATE, DELETE, SELECT (message_id, attempts) ON poison_attempts TO login_etl_writer;
