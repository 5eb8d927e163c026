-- Privacy policies (issue 35). `run --policy FILE` stores each field as the policy says; a row
-- whose pseudonyms are scoped to a period (`scope = "month"`) carries that period, so equal masks
-- are compared only inside it. `privacy_policy` records every policy a writer has used, with what
-- it stores in each column (a run without a policy file records what its flags store): `run`
-- refuses a policy that stores a column another way than a policy recorded before, because old
-- and new values would never match.
ALTER TABLE user_logins ADD COLUMN IF NOT EXISTS period varchar(32);

CREATE TABLE IF NOT EXISTS privacy_policy (
    fingerprint text PRIMARY KEY CHECK (fingerprint ~ '^pol-[0-9a-f]{12}$'),
    canonical   text NOT NULL,
    columns     jsonb NOT NULL,
    first_used  timestamptz NOT NULL DEFAULT now(),
    last_used   timestamptz NOT NULL DEFAULT now()
);

-- Rows written before policies were recorded are recorded as a policy of their own (run as the
-- owner, who can read them): the strategy of the newest row's masks (a table moved from sha256 to
-- hmac is hmac now; `rekey` converts the rest), and whether any row has a network pseudonym (of
-- prefixes that cannot be told, so any network pseudonym may follow). It reads the table once.
WITH newest AS (
    SELECT masked_ip AS ip, masked_device_id AS device FROM user_logins
    ORDER BY sent_at DESC NULLS LAST, create_date DESC NULLS LAST LIMIT 1
), network AS (
    SELECT masked_ip_network AS n FROM user_logins WHERE masked_ip_network IS NOT NULL
    ORDER BY sent_at DESC NULLS LAST LIMIT 1
)
INSERT INTO privacy_policy (fingerprint, canonical, columns)
SELECT 'pol-000000000000', 'no policy file: rows written before policies were recorded',
       jsonb_build_object(
           'user_id', 'keep', 'device_type', 'keep', 'locale', 'keep', 'app_version', 'keep',
           'create_date', 'keep', 'sent_at', 'keep',
           'masked_ip', CASE WHEN s.ip IS NULL THEN 'empty'
                             WHEN s.ip ~ '^[0-9a-fA-F]{64}$' THEN 'sha256'
                             WHEN s.ip ~ '^[^:]+:[0-9a-fA-F]{64}$' THEN 'hmac'
                             ELSE 'aes-siv' END,
           'masked_device_id', CASE WHEN s.device IS NULL THEN 'empty'
                                    WHEN s.device ~ '^[0-9a-fA-F]{64}$' THEN 'sha256'
                                    WHEN s.device ~ '^[^:]+:[0-9a-fA-F]{64}$' THEN 'hmac'
                                    ELSE 'aes-siv' END,
           'masked_ip_network', CASE WHEN (SELECT n FROM network) IS NULL THEN 'empty'
                                     WHEN (SELECT n FROM network) LIKE '%:pfx:%' THEN 'ipcrypt-pfx'
                                     ELSE 'network' END)
FROM newest AS s
ON CONFLICT (fingerprint) DO NOTHING;

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
