-- What the operator commands need — `erase`, `rekey`, `retire-key`, `backfill`, and the plain table's
-- retention (`run --retain-days` as a separate operator consumer) — so that they do not run as
-- the schema's owner. They never change the schema: `login-etl migrate` runs as the owner first.
-- The audit tables can only be added to: their `db_user` and time are stamped by the server
-- (migration 15), and the two changes operators make to audit rows go through the owner's
-- functions granted at the end. Replace `analytics` with your database.
CREATE ROLE login_etl_operator NOLOGIN;
GRANT CONNECT ON DATABASE analytics TO login_etl_operator;
-- Only the schema's owner creates objects in it (PostgreSQL 14 and older grant CREATE on `public`
-- to every role; see least-privilege.sql).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM login_etl_operator;
GRANT USAGE ON SCHEMA public TO login_etl_operator;
-- Checking that the schema is current (operator commands refuse to run on an older one).
GRANT SELECT ON login_etl_schema_migrations TO login_etl_operator;
-- erase: find and delete the subject's rows (its lock on user_logins needs DELETE or UPDATE);
-- rekey: rewrite masks in place; retire-key and retention: read and delete.
GRANT SELECT, DELETE, UPDATE (masked_ip, masked_device_id, masked_ip_network, extra_fields)
    ON user_logins TO login_etl_operator;
GRANT SELECT, DELETE, UPDATE (body_masked, user_ids, user_id)
    ON quarantined_messages TO login_etl_operator;
-- erase's records, checked by every write: read only. They are written (stamped by the server)
-- by the owner's function below, together with the erase's audit row (migration 18).
GRANT SELECT ON erased_subjects TO login_etl_operator;
-- Key fingerprints: checked against the ring; `rekey --to` records the key it writes under.
GRANT SELECT, INSERT ON mask_key_fingerprints TO login_etl_operator;
-- The privacy policy in force (migration 21), for `report privacy`.
GRANT SELECT ON privacy_policy TO login_etl_operator;
-- Period keys (migration 22): read them (shred's plan, rekey). They change only through the
-- owner's audited functions granted below (the server refuses any other change).
GRANT SELECT ON period_keys, shred_horizons TO login_etl_operator;
-- backfill: registers each S3 object it enqueues (bucket, size, time; the key only as a hash),
-- so that `status` and `backfill --wait` can say what is done and what is left.
-- Column by column: the read counts and `finished_at` are the writer's alone (an operator who
-- could set them could make `backfill` skip an object as read), `db_user` and `started_at` the
-- server's.
GRANT SELECT, INSERT (bucket, prefix, since, until) ON s3_backfills TO login_etl_operator;
GRANT USAGE ON SEQUENCE s3_backfills_id_seq TO login_etl_operator;
GRANT SELECT, INSERT (object_id, bucket, size_bytes, last_modified, backfill_id),
      UPDATE (bucket, size_bytes, last_modified, backfill_id) ON s3_objects TO login_etl_operator;
-- Its own audit rows: INSERT of the columns a client may set (db_user and at are the server's),
-- and reading them back (`RETURNING id`). No UPDATE, DELETE or TRUNCATE.
GRANT SELECT, INSERT (operation, os_user, actor, reason, rows, quarantined, detail)
    ON privacy_operations TO login_etl_operator;
GRANT USAGE ON SEQUENCE privacy_operations_id_seq TO login_etl_operator;
-- The only changes to audit rows anyone but the owner can make: erase deletes the subject's
-- rows, records the erasure and takes the subject's masks out of the reveal audit (and the
-- function writes the erase's audit row itself, with the ids of the reveal rows it changed);
-- rekey counts its batches in its own row.
GRANT EXECUTE ON FUNCTION
    login_etl_erase_audited(text, text[], text[], text[], text, text, text, bigint, bigint)
    TO login_etl_operator;
-- The same erase by the id and the pseudonyms a policy stores in its place (migration 22).
GRANT EXECUTE ON FUNCTION
    login_etl_erase_subject_audited(text[], text[], text[], text[], text, text, text, bigint, bigint)
    TO login_etl_operator;
GRANT EXECUTE ON FUNCTION login_etl_count_rekeyed(bigint, bigint) TO login_etl_operator;
-- shred: destroys the keys of the periods ending by a time, sets the horizon and writes its audit
-- row, in one transaction (migration 22); the only way anyone destroys a key.
GRANT EXECUTE ON FUNCTION login_etl_shred_audited(timestamptz, text, text, text)
    TO login_etl_operator;
-- rekey --to: re-wraps the live period keys under the new key, audited (migration 22).
GRANT EXECUTE ON FUNCTION login_etl_rewrap_period_keys(text[], text, bytea[], text, text, text)
    TO login_etl_operator;
-- Audit retention (`--audit-retention-days`) deletes audit rows: only the owner runs it.
