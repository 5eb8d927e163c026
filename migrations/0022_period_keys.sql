-- Crypto-shredding (issue 35). A policy's scoped `aes-siv` values are sealed under a random key
-- per period, kept here wrapped by a key of the ring (`src/mask/period_key.rs`); `shred`
-- destroys the wrapped copy, after which nothing recovers those values. A period's row stays
-- once shredded (`wrapped` NULL), so no consumer can make the period a new key: logins of a
-- shredded period that arrive later store NULL in its place.
CREATE TABLE IF NOT EXISTS period_keys (
    period      varchar(32) PRIMARY KEY,
    wrapped_by  text,
    wrapped     bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    shredded_at timestamptz,
    CHECK ((wrapped IS NULL) = (shredded_at IS NOT NULL)),
    CHECK ((wrapped IS NULL) = (wrapped_by IS NULL))
);

-- The periods a table holds are read by walking this index (erase of a pseudonymised subject,
-- `shred`'s counts), not by scanning the table while writers wait.
CREATE INDEX IF NOT EXISTS user_logins_period ON user_logins (period) WHERE period IS NOT NULL;

-- When a period ends (exclusive), from its label: `2026-12`, `2026-W49`, `2026-12-05` (UTC);
-- NULL for anything else. The same rule as `mask::period_end` (tests/it/policy_shred.rs).
CREATE OR REPLACE FUNCTION login_etl_period_end(period_ text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF period_ ~ '^[0-9]{4}-[0-9]{2}$' THEN
        RETURN ((period_ || '-01')::date + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    ELSIF period_ ~ '^[0-9]{4}-W[0-9]{2}$' THEN
        IF substr(period_, 7, 2)::int NOT BETWEEN 1 AND 53
           OR to_char(to_date(period_, 'IYYY-"W"IW'), 'IYYY-"W"IW') <> period_ THEN
            RETURN NULL;
        END IF;
        RETURN (to_date(period_, 'IYYY-"W"IW') + 7)::timestamp AT TIME ZONE 'UTC';
    ELSIF period_ ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
        RETURN (period_::date + 1)::timestamp AT TIME ZONE 'UTC';
    END IF;
    RETURN NULL;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

-- Every role's insert into period_keys calls it (in the trigger below), whatever the database's
-- default privileges say about functions.
GRANT EXECUTE ON FUNCTION login_etl_period_end(text) TO PUBLIC;

-- The server keeps the times, and a shred is for good and audited: only the owner's
-- `login_etl_shred_audited` destroys keys (with its audit row, in one transaction); a shredded
-- period is never given a key again, a key's row is never deleted, its period never changed; a
-- key added for a period behind the shred horizon (a writer that read the horizon just before a
-- shred committed) is stored shredded.
CREATE OR REPLACE FUNCTION login_etl_guard_period_key() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    owner_ text := (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID);
    horizon_ timestamptz;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'period keys are never deleted (shred destroys a key and keeps its row)'
            USING ERRCODE = '42501';
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- The horizon below must be read after any shred this insert waited for.
        IF current_user::text <> owner_
           AND current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE EXCEPTION 'period keys are added at READ COMMITTED (a shred''s horizon must be seen)'
                USING ERRCODE = '42501';
        END IF;
        SELECT max(before) INTO horizon_ FROM public.shred_horizons;
        IF horizon_ IS NOT NULL AND coalesce(public.login_etl_period_end(NEW.period::text) <= horizon_,
                                             true) THEN
            NEW.wrapped := NULL;
            NEW.wrapped_by := NULL;
        ELSIF NEW.wrapped IS NULL AND current_user::text <> owner_ THEN
            RAISE EXCEPTION 'a period key is added with its key (only shred leaves it empty)'
                USING ERRCODE = '42501';
        END IF;
        NEW.created_at := clock_timestamp();
        NEW.shredded_at := CASE WHEN NEW.wrapped IS NULL THEN clock_timestamp() END;
        RETURN NEW;
    END IF;
    IF OLD.wrapped IS NULL AND NEW.wrapped IS NOT NULL THEN
        RAISE EXCEPTION 'period % was shredded: it is never given a key again', OLD.period
            USING ERRCODE = '42501';
    END IF;
    -- A key changes only through the owner's audited functions: shred, and rekey's re-wrap
    -- (anything else written over a key would destroy it as surely as a shred, unaudited).
    IF current_user::text <> owner_ THEN
        RAISE EXCEPTION 'period keys change only through login_etl_shred_audited and login_etl_rewrap_period_keys (login-etl shred, rekey)'
            USING ERRCODE = '42501';
    END IF;
    NEW.period := OLD.period;
    NEW.created_at := OLD.created_at;
    NEW.shredded_at := CASE WHEN OLD.wrapped IS NULL THEN OLD.shredded_at
                            WHEN NEW.wrapped IS NULL THEN clock_timestamp() END;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS period_keys_guarded ON period_keys;
CREATE TRIGGER period_keys_guarded BEFORE INSERT OR UPDATE OR DELETE ON period_keys
    FOR EACH ROW EXECUTE FUNCTION login_etl_guard_period_key();
REVOKE UPDATE, DELETE, TRUNCATE ON period_keys FROM PUBLIC;

-- TRUNCATE fires no row trigger: refused on both tables (the owner disables it to truly mean it).
CREATE OR REPLACE FUNCTION login_etl_refuse_truncate() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '% is never truncated (shred destroys keys, audited)', TG_TABLE_NAME
        USING ERRCODE = '42501';
END $$;
DROP TRIGGER IF EXISTS period_keys_not_truncated ON period_keys;
CREATE TRIGGER period_keys_not_truncated BEFORE TRUNCATE ON period_keys
    FOR EACH STATEMENT EXECUTE FUNCTION login_etl_refuse_truncate();

-- `shred --before T` shreds every period that ends by T, including those no key was made for
-- yet: a login of such a period that arrives later (a backfill, a redrive) is never sealed under
-- a new key. Writers read the latest horizon in the transaction of each write. Only the owner's
-- function sets one, never in the future, stamped by the server.
CREATE TABLE IF NOT EXISTS shred_horizons (
    before      timestamptz PRIMARY KEY,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CHECK (before <= recorded_at AND isfinite(before))
);
CREATE OR REPLACE FUNCTION login_etl_stamp_horizon() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP <> 'INSERT' OR current_user::text <> (
           SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID) THEN
        RAISE EXCEPTION 'shred horizons are set only by login_etl_shred_audited (login-etl shred)'
            USING ERRCODE = '42501';
    END IF;
    NEW.recorded_at := clock_timestamp();
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS shred_horizons_stamped ON shred_horizons;
CREATE TRIGGER shred_horizons_stamped BEFORE INSERT OR UPDATE OR DELETE ON shred_horizons
    FOR EACH ROW EXECUTE FUNCTION login_etl_stamp_horizon();
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON shred_horizons FROM PUBLIC;
DROP TRIGGER IF EXISTS shred_horizons_not_truncated ON shred_horizons;
CREATE TRIGGER shred_horizons_not_truncated BEFORE TRUNCATE ON shred_horizons
    FOR EACH STATEMENT EXECUTE FUNCTION login_etl_refuse_truncate();

ALTER TABLE privacy_operations DROP CONSTRAINT IF EXISTS privacy_operations_operation_check;
ALTER TABLE privacy_operations ADD CONSTRAINT privacy_operations_operation_check
    CHECK (operation IN ('erase', 'retention', 'rekey', 'quarantine_retention', 'audit_retention',
                         'redrive', 'shred'));

-- Migration 20's stamp, and a shred's audit row, like an erase's, written only by the owner's
-- function: nobody records a shred that did not happen.
CREATE OR REPLACE FUNCTION login_etl_stamp_operation() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.operation IN ('erase', 'shred') AND current_user::text <> (
               SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID) THEN
            RAISE EXCEPTION '% audit rows are written only by login_etl_%_audited', NEW.operation,
                CASE NEW.operation WHEN 'erase' THEN 'erase' ELSE 'shred' END
                USING ERRCODE = '42501';
        END IF;
        NEW.db_user := session_user;
        NEW.at := clock_timestamp();
    ELSE
        NEW.db_user := OLD.db_user;
        NEW.at := OLD.at;
        NEW.operation := OLD.operation;
        NEW.os_user := OLD.os_user;
        NEW.actor := OLD.actor;
        NEW.reason := OLD.reason;
    END IF;
    RETURN NEW;
END $$;

-- `login-etl shred`: in one transaction, writers locked out (the lock order of erase), the keys
-- of every period ending by `before_` destroyed, the horizon recorded, and the audit row (the
-- periods, the rows they hold) written. Its audit id, the periods and their rows.
CREATE OR REPLACE FUNCTION login_etl_shred_audited(
    before_ timestamptz, os_user_ text, actor_ text, reason_ text)
RETURNS TABLE (audit_id bigint, periods text[], rows bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    periods_ text[];
    done_ text[];
    rows_ bigint;
    id_ bigint;
BEGIN
    -- The lock order below holds only when each statement sees what committed before it.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'a shred runs at READ COMMITTED (the writers'' lock order relies on it)';
    END IF;
    IF before_ IS NULL OR NOT isfinite(before_) OR before_ > clock_timestamp() THEN
        RAISE EXCEPTION 'a shred ends by a time that has passed (periods still running are still written)';
    END IF;
    IF coalesce(btrim(reason_), '') = '' THEN
        RAISE EXCEPTION 'a shred says why';
    END IF;
    LOCK TABLE public.user_logins IN SHARE ROW EXCLUSIVE MODE;
    -- A writer adding a key waits, then reads the horizon this shred sets.
    LOCK TABLE public.period_keys IN SHARE ROW EXCLUSIVE MODE;
    SELECT coalesce(array_agg(period::text ORDER BY period), '{}') INTO periods_
        FROM public.period_keys
        WHERE wrapped IS NOT NULL
          AND coalesce(public.login_etl_period_end(period::text) <= before_, true);
    SELECT count(*) INTO rows_ FROM public.user_logins WHERE period = ANY(periods_);
    WITH destroyed AS (
        UPDATE public.period_keys SET wrapped = NULL, wrapped_by = NULL
        WHERE period = ANY(periods_) RETURNING period::text)
    SELECT coalesce(array_agg(period ORDER BY period), '{}') INTO done_ FROM destroyed;
    -- Audit only what was destroyed: anything that kept a key from changing is an error.
    IF done_ IS DISTINCT FROM periods_ THEN
        RAISE EXCEPTION 'shred destroyed % of the % keys it chose: nothing was changed',
            cardinality(done_), cardinality(periods_);
    END IF;
    INSERT INTO public.shred_horizons (before) VALUES (before_) ON CONFLICT DO NOTHING;
    INSERT INTO public.privacy_operations (operation, os_user, actor, reason, rows, detail)
    VALUES ('shred', os_user_, actor_, reason_, rows_,
            jsonb_build_object('before', before_, 'periods', to_jsonb(periods_)))
    RETURNING id INTO id_;
    RETURN QUERY SELECT id_, periods_, rows_;
END $$;
REVOKE EXECUTE ON FUNCTION login_etl_shred_audited(timestamptz, text, text, text) FROM PUBLIC;

-- `rekey --to K`: live period keys re-wrapped under K (their key unchanged, opened and sealed
-- again by the caller, which holds the ring), audited. K must be a recorded key (`rekey`
-- records it first), and a key already under K or shredded is left alone.
CREATE OR REPLACE FUNCTION login_etl_rewrap_period_keys(
    periods_ text[], wrapped_by_ text, wrapped_ bytea[], os_user_ text, actor_ text, reason_ text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    done_ text[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM public.mask_key_fingerprints WHERE key_id = wrapped_by_) THEN
        RAISE EXCEPTION 'period keys are re-wrapped only under a recorded key (rekey --to records it)';
    END IF;
    IF cardinality(periods_) IS DISTINCT FROM cardinality(wrapped_)
       OR EXISTS (SELECT 1 FROM unnest(wrapped_) AS w WHERE w IS NULL OR length(w) < 32)
       OR (SELECT count(DISTINCT p) FROM unnest(periods_) AS p) <> cardinality(periods_) THEN
        RAISE EXCEPTION 'a re-wrap gives one wrapped key for each period, once';
    END IF;
    IF coalesce(btrim(reason_), '') = '' THEN
        RAISE EXCEPTION 'a re-wrap says why';
    END IF;
    WITH changed AS (
        UPDATE public.period_keys AS k SET wrapped_by = wrapped_by_, wrapped = w.wrapped
        FROM unnest(periods_, wrapped_) AS w(period, wrapped)
        WHERE k.period = w.period AND k.wrapped IS NOT NULL AND k.wrapped_by <> wrapped_by_
        RETURNING k.period::text)
    SELECT coalesce(array_agg(period ORDER BY period), '{}') INTO done_ FROM changed;
    IF cardinality(done_) > 0 THEN
        INSERT INTO public.privacy_operations (operation, os_user, actor, reason, rows, detail)
        VALUES ('rekey', os_user_, actor_, reason_, 0,
                jsonb_build_object('period_keys_rewrapped', to_jsonb(done_), 'to', wrapped_by_));
    END IF;
    RETURN cardinality(done_);
END $$;
REVOKE EXECUTE ON FUNCTION login_etl_rewrap_period_keys(text[], text, bytea[], text, text, text)
    FROM PUBLIC;

-- `erase` under `user_id = "pseudonym"` (issue 35): the subject's rows are stored under
-- pseudonyms (one per key, and per period when scoped), which `erase` computes from the id it is
-- given. The same function as migration 20's, deleting rows by the id and those pseudonyms
-- (`user_ids_`, the id first: what the reveal audit's selectors name).
CREATE OR REPLACE FUNCTION login_etl_erase_subject_audited(
    user_ids_ text[], records_ text[], subjects_ text[], masks_ text[],
    os_user_ text, actor_ text, reason_ text, quarantined_ bigint, stripped_ bigint)
RETURNS TABLE (audit_id bigint, reveals bigint, deleted bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    deleted_ bigint;
    stamp_ timestamptz;
    recorded_ jsonb;
    changed bigint[];
    selectors_ text[];
    id_ bigint;
BEGIN
    -- The lock order below holds only when each statement sees what committed before it.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'an erase runs at READ COMMITTED (the writers'' lock order relies on it)';
    END IF;
    IF cardinality(user_ids_) IS NULL OR cardinality(user_ids_) = 0 OR user_ids_[1] IS NULL
       OR cardinality(records_) IS NULL OR cardinality(records_) = 0
       OR cardinality(subjects_) IS NULL OR cardinality(subjects_) = 0 THEN
        RAISE EXCEPTION 'an erase names its subject, its erasure records and its fingerprints';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(user_ids_[2:]) AS u WHERE u !~ '^[^:]+:[0-9a-f]{64}$') THEN
        RAISE EXCEPTION 'an erase names one subject: its id, then pseudonyms of it';
    END IF;
    IF quarantined_ < 0 OR stripped_ < 0 THEN
        RAISE EXCEPTION 'an erase has a negative count';
    END IF;
    IF NOT subjects_ <@ records_ THEN
        RAISE EXCEPTION 'an erase records the fingerprints it names';
    END IF;
    -- The writers' lock order (src/sink/postgres/erased.rs): no write interleaves.
    LOCK TABLE public.user_logins IN SHARE ROW EXCLUSIVE MODE;
    -- A reveal whose audit row is written but not committed is waited for, then neutralised.
    LOCK TABLE public.mask_reveals IN SHARE ROW EXCLUSIVE MODE;
    -- The erasure's time: now, after the lock (every write in flight has committed by then).
    stamp_ := clock_timestamp();
    DELETE FROM public.user_logins WHERE user_id = ANY(user_ids_);
    GET DIAGNOSTICS deleted_ = ROW_COUNT;
    SELECT coalesce(jsonb_agg(jsonb_build_object('fingerprint', r, 'before', e.erased_at)
                              ORDER BY r), '[]')
        INTO recorded_
        FROM (SELECT DISTINCT r FROM unnest(records_) AS r) AS d(r)
        LEFT JOIN public.erased_subjects AS e ON e.fingerprint = d.r;
    INSERT INTO public.erased_subjects AS e (fingerprint, erased_at)
        SELECT DISTINCT r, stamp_ FROM unnest(records_) AS r
        ON CONFLICT (fingerprint) DO UPDATE SET erased_at = greatest(e.erased_at, EXCLUDED.erased_at);
    -- A mask a stored row still holds is someone's data: it stays in the audit.
    masks_ := ARRAY(SELECT DISTINCT m FROM unnest(masks_) AS m WHERE m IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM public.user_logins AS l
        WHERE l.masked_ip = m OR l.masked_device_id = m OR l.masked_ip_network = m));
    -- The selectors `reveal` wrote for this subject and these masks (Rust's `{:?}` of a mask, which
    -- has no character it escapes, and of the id: the same as JSON's for ids without control
    -- characters), and nothing else.
    selectors_ := ARRAY['user_id = ' || to_json(user_ids_[1])::text]
        || ARRAY(SELECT 'masked_ip = "' || m || '"' FROM unnest(masks_) AS m)
        || ARRAY(SELECT 'masked_device_id = "' || m || '"' FROM unnest(masks_) AS m);
    WITH touched AS (
        UPDATE public.mask_reveals SET
            masks = ARRAY(SELECT m FROM unnest(masks) AS m WHERE m <> ALL(masks_)),
            selector = CASE WHEN selector = ANY(selectors_) OR subject = ANY(subjects_)
                            THEN 'erased subject' ELSE selector END,
            subject = CASE WHEN subject = ANY(subjects_) THEN NULL ELSE subject END
        WHERE masks && masks_ OR selector = ANY(selectors_) OR subject = ANY(subjects_)
        RETURNING id)
    SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO changed FROM touched;
    INSERT INTO public.privacy_operations (operation, os_user, actor, reason, rows, quarantined, detail)
    VALUES ('erase', os_user_, actor_, reason_, deleted_, quarantined_, jsonb_build_object(
                'subject', subjects_[1], 'subjects', to_jsonb(subjects_),
                'quarantine_entries_stripped', stripped_,
                'reveals_neutralised', cardinality(changed), 'reveal_ids', to_jsonb(changed),
                'records', recorded_, 'erased_at', stamp_))
    RETURNING id INTO id_;
    RETURN QUERY SELECT id_, cardinality(changed)::bigint, deleted_;
END $$;
REVOKE EXECUTE ON FUNCTION login_etl_erase_subject_audited(text[], text[], text[], text[], text,
    text, text, bigint, bigint) FROM PUBLIC;
-- Whatever default privileges gave on the new tables and functions is taken back first (as
-- migration 20 did for the tables before it); the grants below are the only ones.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT DISTINCT c.oid::regclass::text AS tab,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                         ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS role
             FROM pg_class AS c, aclexplode(c.relacl) AS a
             WHERE c.oid IN ('public.period_keys'::regclass, 'public.shred_horizons'::regclass)
               AND a.grantee <> c.relowner LOOP
        EXECUTE format('REVOKE ALL ON %s FROM %s', r.tab, r.role);
    END LOOP;
    FOR r IN SELECT DISTINCT p.oid::regprocedure::text AS fn,
                    quote_ident(pg_get_userbyid(a.grantee)) AS role
             FROM pg_proc AS p, aclexplode(p.proacl) AS a
             WHERE p.proname IN ('login_etl_shred_audited', 'login_etl_rewrap_period_keys',
                                 'login_etl_erase_subject_audited')
               AND p.pronamespace = 'public'::regnamespace
               AND a.grantee <> p.proowner AND a.grantee <> 0 LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %s', r.fn, r.role);
    END LOOP;
END $$;

-- A database upgraded with its roles in place: writers (INSERT on user_logins) read keys and
-- add new ones; readers of rows (reveal, reports) read them; operators (who may rewrite
-- user_logins' masks: rekey) re-wrap and shred them through the owner's functions. A retention writer's
-- DELETE on user_logins gives nothing here. Fresh installs get the same from
-- docs/least-privilege*.sql.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT DISTINCT pg_get_userbyid(a.grantee) AS role, a.privilege_type AS p
             FROM pg_class AS c, aclexplode(c.relacl) AS a
             WHERE c.oid = 'public.user_logins'::regclass
               AND a.privilege_type IN ('INSERT', 'SELECT')
               AND a.grantee <> c.relowner AND a.grantee <> 0 LOOP
        EXECUTE format('GRANT SELECT ON period_keys, shred_horizons TO %I', r.role);
        IF r.p = 'INSERT' THEN
            EXECUTE format('GRANT INSERT (period, wrapped_by, wrapped) ON period_keys TO %I', r.role);
        END IF;
    END LOOP;
    -- The roles granted UPDATE of the masks themselves (table or column grant), not those that
    -- have it through membership or a built-in role such as pg_write_all_data.
    FOR r IN SELECT DISTINCT pg_get_userbyid(g.grantee) AS role
             FROM pg_class AS c,
                  LATERAL (SELECT (aclexplode(c.relacl)).*
                           UNION ALL
                           SELECT (aclexplode(a.attacl)).* FROM pg_attribute AS a
                           WHERE a.attrelid = c.oid AND a.attname = 'masked_ip') AS g
             WHERE c.oid = 'public.user_logins'::regclass AND g.privilege_type = 'UPDATE'
               AND g.grantee <> c.relowner AND g.grantee <> 0
               AND pg_get_userbyid(g.grantee) NOT LIKE 'pg\_%' LOOP
        EXECUTE format('GRANT SELECT ON period_keys, shred_horizons TO %I', r.role);
        EXECUTE format('GRANT EXECUTE ON FUNCTION login_etl_shred_audited(timestamptz, text, '
                       'text, text) TO %I', r.role);
        EXECUTE format('GRANT EXECUTE ON FUNCTION login_etl_rewrap_period_keys(text[], text, '
                       'bytea[], text, text, text) TO %I', r.role);
    END LOOP;
END $$;

-- Whoever may run migration 20's erase may run this one.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT DISTINCT pg_get_userbyid(a.grantee) AS role
             FROM pg_proc AS p, aclexplode(p.proacl) AS a
             WHERE p.oid = to_regprocedure('login_etl_erase_audited(text, text[], text[], '
                                           'text[], text, text, text, bigint, bigint)')
               AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0 LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION login_etl_erase_subject_audited(text[], '
                       'text[], text[], text[], text, text, text, bigint, bigint) TO %I', r.role);
    END LOOP;
END $$;
