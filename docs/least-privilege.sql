-- The least privilege `login-etl run` needs, once `login-etl migrate` has been run by the owner of
-- the schema (e.g. as a deploy step). Replace `analytics` with your database; set a password or use
-- IAM authentication for the role.
CREATE ROLE login_etl_writer NOLOGIN;
GRANT CONNECT ON DATABASE analytics TO login_etl_writer;
-- Only the schema's owner creates objects in it. PostgreSQL 14 and older let every role (PUBLIC)
-- create in `public`, so this role could plant a table or function there that another role's
-- query would then resolve to; 15 and later no longer grant it, and revoking again is harmless.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM login_etl_writer;
GRANT USAGE ON SCHEMA public TO login_etl_writer;
-- Checking the schema version at start.
GRANT SELECT ON login_etl_schema_migrations TO login_etl_writer;
-- Rows (COPY needs INSERT only).
GRANT INSERT ON user_logins TO login_etl_writer;
-- Ledger and quarantine: `ON CONFLICT (message_id)` and `RETURNING message_id` need SELECT on
-- that column, and the quarantine insert returns its reason codes for the metrics (ids and codes
-- only: no login data is readable).
GRANT INSERT, SELECT (message_id) ON processed_messages TO login_etl_writer;
-- Ledger pruning past --ledger-retention-days (src/sink/postgres/prune.rs): DELETE, and the
-- `FOR UPDATE SKIP LOCKED` that keeps it off the writers' rows needs UPDATE on a column.
GRANT DELETE, SELECT (processed_at), UPDATE (processed_at) ON processed_messages TO login_etl_writer;
GRANT INSERT, SELECT (message_id, element, reason_code) ON quarantined_messages TO login_etl_writer;
-- Redeliveries and redriven dead letters (src/sink/postgres/redrive/): a message the ledger
-- holds as quarantined is tried again; its open entry counts the attempt or is resolved.
GRANT SELECT (outcome), UPDATE (outcome) ON processed_messages TO login_etl_writer;
GRANT SELECT (attempts, resolved_at),
      UPDATE (attempts, last_attempt_at, reason_code, reason, receive_count, resolved_at)
      ON quarantined_messages TO login_etl_writer;
-- Unknown field names (names only), recorded the first time a producer sends one.
GRANT INSERT, SELECT (name) ON unknown_fields TO login_etl_writer;
-- Key fingerprints (key ids and keyed hashes, nothing about the keys): read at start, the active
-- key's recorded the first time it masks a row.
GRANT INSERT, SELECT ON mask_key_fingerprints TO login_etl_writer;
-- The privacy policy in force (migration 21): read at start, and `run --policy` records the
-- policy it writes under (fingerprint, choices, what each column holds; no login).
GRANT SELECT, INSERT, UPDATE (last_used) ON privacy_policy TO login_etl_writer;
-- Period keys (migration 22): a policy's scoped aes-siv values are sealed under a random key per
-- period, kept wrapped by the key ring; the first writer that needs one adds it. Never UPDATE or
-- DELETE: only `shred` (an operator) destroys keys.
GRANT SELECT, INSERT (period, wrapped_by, wrapped) ON period_keys TO login_etl_writer;
GRANT SELECT ON shred_horizons TO login_etl_writer;
-- Erasure records (migration 14): each write leaves out the logins of subjects erased after
-- they were sent; it only reads them.
GRANT SELECT ON erased_subjects TO login_etl_writer;
-- How far each S3 object has been read (migration 19): a chunk's commit adds to its object's
-- counts (object ids are hashes; no key, no login).
GRANT SELECT (object_id, logins, chunks, first_read_at, finished_at),
      INSERT (object_id, logins, chunks, first_read_at, finished_at),
      UPDATE (logins, chunks, first_read_at, finished_at) ON s3_objects TO login_etl_writer;
-- Solo attempts of suspect messages (ids and counters only): recorded, counted, cleared on commit.
GRANT INSERT, UPDATE, DELETE, SELECT (message_id, attempts) ON poison_attempts TO login_etl_writer;
-- Optional, only with `run --retain-days` on a plain (unpartitioned) table: the background
-- retention deletes old rows and records each batch.
--   GRANT DELETE, SELECT (create_date) ON user_logins TO login_etl_writer;
--   GRANT INSERT ON privacy_operations TO login_etl_writer;
--   GRANT USAGE ON SEQUENCE privacy_operations_id_seq TO login_etl_writer;
-- With a partitioned table, creating next months' partitions and dropping old ones needs the
-- table's owner: run `login-etl migrate` as the owner monthly (a cron job or deploy step), and
-- retention as the owner too.
