-- What has been loaded from S3 (issue 34), for `status` and `backfill --wait`. `s3_objects` has
-- one row per object's content, under the id its chunks' ledger ids start with (`s3:` and a
-- hash of bucket, key and version or ETag: a key may hold anything, so it is never stored).
-- `backfill` registers what it enqueues (bucket, size, LastModified); a consumer adds each
-- newly committed chunk's logins (rows and quarantine entries) in the chunk's own transaction,
-- and stamps `finished_at` with the object's last chunk: the counts are exact across crashes
-- and redeliveries, because a chunk is counted only when its ledger id is new.
CREATE TABLE IF NOT EXISTS s3_backfills (
    id         bigserial PRIMARY KEY,
    bucket     text NOT NULL,
    prefix     text NOT NULL,
    since      timestamptz,
    until      timestamptz,
    db_user    text NOT NULL DEFAULT current_user,
    started_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS s3_objects (
    object_id     text PRIMARY KEY CHECK (object_id ~ '^s3:[0-9a-f]{32}$'),
    bucket        text,
    size_bytes    bigint,
    last_modified timestamptz,
    backfill_id   bigint REFERENCES s3_backfills (id) ON DELETE SET NULL,
    logins        bigint NOT NULL DEFAULT 0,
    chunks        integer NOT NULL DEFAULT 0,
    first_read_at timestamptz,
    finished_at   timestamptz
);
CREATE INDEX IF NOT EXISTS s3_objects_backfill ON s3_objects (backfill_id);

-- A database upgraded with its roles in place: the roles that write the ledger (writers, from
-- least-privilege.sql) may count chunks; the roles that may erase (operators, from
-- least-privilege-operator.sql) may register backfills. Fresh installs get the same from those
-- files.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT DISTINCT pg_get_userbyid(a.grantee) AS role
             FROM pg_class AS c, aclexplode(c.relacl) AS a
             WHERE c.oid = 'public.processed_messages'::regclass AND a.privilege_type = 'INSERT'
               AND a.grantee <> c.relowner AND a.grantee <> 0 LOOP
        EXECUTE format('GRANT SELECT (object_id, logins, chunks, first_read_at, finished_at), '
                       'INSERT (object_id, logins, chunks, first_read_at, finished_at), '
                       'UPDATE (logins, chunks, first_read_at, finished_at) ON s3_objects TO %I',
                       r.role);
    END LOOP;
    FOR r IN SELECT DISTINCT pg_get_userbyid(a.grantee) AS role
             FROM pg_proc AS p, aclexplode(p.proacl) AS a
             WHERE p.oid = to_regprocedure('login_etl_erase_audited(text, text[], text[], text[], '
                                           'text, text, text, bigint, bigint)')
               AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0 LOOP
        EXECUTE format('GRANT SELECT, INSERT (bucket, prefix, since, until) ON s3_backfills '
                       'TO %I', r.role);
        EXECUTE format('GRANT USAGE ON SEQUENCE s3_backfills_id_seq TO %I', r.role);
        EXECUTE format('GRANT SELECT, INSERT (object_id, bucket, size_bytes, last_modified, '
                       'backfill_id), UPDATE (bucket, size_bytes, last_modified, backfill_id) '
                       'ON s3_objects TO %I', r.role);
    END LOOP;
END $$;
