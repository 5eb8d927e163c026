-- Privacy policies (issue 35). `run --policy FILE` stores each field as the policy says; a row
-- whose pseudonyms are scoped to a period (`scope = "month"`) carries that period, so equal masks
-- are compared only inside it. `privacy_policy` records every policy a writer has used, with what
-- it stores in each column: `run` refuses a policy that stores a column another way than the
-- policy in force (the last one recorded), because old and new values would never match.
ALTER TABLE user_logins ADD COLUMN IF NOT EXISTS period varchar(32);

CREATE TABLE IF NOT EXISTS privacy_policy (
    fingerprint text PRIMARY KEY CHECK (fingerprint ~ '^pol-[0-9a-f]{12}$'),
    canonical   text NOT NULL,
    columns     jsonb NOT NULL,
    first_used  timestamptz NOT NULL DEFAULT now(),
    last_used   timestamptz NOT NULL DEFAULT now()
);

-- A database upgraded with its roles in place: the roles that write rows record the policy they
-- write under; the roles that read rows (operators, revealers) may read it. Fresh installs get
-- the same from docs/least-privilege*.sql.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT DISTINCT pg_get_userbyid(a.grantee) AS role
             FROM pg_class AS c, aclexplode(c.relacl) AS a
             WHERE c.oid = 'public.user_logins'::regclass
               AND a.privilege_type IN ('INSERT', 'SELECT')
               AND a.grantee <> c.relowner AND a.grantee <> 0 LOOP
        EXECUTE format('GRANT SELECT ON privacy_policy TO %I', r.role);
    END LOOP;
    FOR r IN SELECT DISTINCT pg_get_userbyid(a.grantee) AS role
             FROM pg_class AS c, aclexplode(c.relacl) AS a
             WHERE c.oid = 'public.user_logins'::regclass AND a.privilege_type = 'INSERT'
               AND a.grantee <> c.relowner AND a.grantee <> 0 LOOP
        EXECUTE format('GRANT INSERT, UPDATE (last_used) ON privacy_policy TO %I', r.role);
    END LOOP;
END $$;
