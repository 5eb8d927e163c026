-- An attack review of migration 18 (issue 32):
--   * the erase runs at READ COMMITTED whatever the database's default (at REPEATABLE READ its
--     snapshot would be taken before its lock: it would miss rows written meanwhile), and waits
--     for reveals whose audit row is not committed yet, so that it neutralises them too;
--   * audit times are the clock's when the row is written, not the transaction's start (which a
--     caller could hold open to date a row back);
--   * an `erase` audit row is written only by the owner's function (the operator may still write
--     the other operations' rows: their columns a client may set);
--   * no role but the owner keeps TRIGGER (a trigger on a table the owner's function writes runs
--     as the owner) or REFERENCES on the tables;
--   * EXECUTE on the two owner functions stays only with roles that may do what they do anyway
--     (delete rows, re-key masks): a grant carried over or given by default privileges goes.
CREATE OR REPLACE FUNCTION login_etl_erase_audited(
    user_id_ text, records_ text[], subjects_ text[], masks_ text[],
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
    IF user_id_ IS NULL OR cardinality(records_) IS NULL OR cardinality(records_) = 0
       OR cardinality(subjects_) IS NULL OR cardinality(subjects_) = 0 THEN
        RAISE EXCEPTION 'an erase names its subject, its erasure records and its fingerprints';
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
    DELETE FROM public.user_logins WHERE user_id = user_id_;
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
    selectors_ := ARRAY['user_id = ' || to_json(user_id_)::text]
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

CREATE OR REPLACE FUNCTION login_etl_stamp_reveal() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.db_user := session_user;
        NEW.revealed_at := clock_timestamp();
    ELSE
        NEW.db_user := OLD.db_user;
        NEW.revealed_at := OLD.revealed_at;
        NEW.os_user := OLD.os_user;
        NEW.actor := OLD.actor;
        NEW.reason := OLD.reason;
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION login_etl_stamp_operation() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.operation = 'erase' AND current_user::text <> (
               SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID) THEN
            RAISE EXCEPTION 'erase audit rows are written only by login_etl_erase_audited'
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

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT DISTINCT c.oid::regclass::text AS tab,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                         ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS role
             FROM pg_class AS c, aclexplode(c.relacl) AS a
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
               AND a.privilege_type IN ('TRIGGER', 'REFERENCES') AND a.grantee <> c.relowner LOOP
        EXECUTE format('REVOKE TRIGGER, REFERENCES ON %s FROM %s', r.tab, r.role);
    END LOOP;
    FOR r IN SELECT DISTINCT a.grantee, pg_get_userbyid(a.grantee) AS role
             FROM pg_proc AS p, aclexplode(p.proacl) AS a
             WHERE p.oid = to_regprocedure('login_etl_erase_audited(text, text[], text[], '
                                           'text[], text, text, text, bigint, bigint)')
               AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner LOOP
        IF r.grantee = 0 OR NOT has_table_privilege(r.grantee, 'public.user_logins', 'DELETE') THEN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION login_etl_erase_audited(text, text[], '
                           'text[], text[], text, text, text, bigint, bigint) FROM %s',
                           CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.role) END);
        END IF;
    END LOOP;
    FOR r IN SELECT DISTINCT a.grantee, pg_get_userbyid(a.grantee) AS role
             FROM pg_proc AS p, aclexplode(p.proacl) AS a
             WHERE p.oid = to_regprocedure('login_etl_count_rekeyed(bigint, bigint)')
               AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner LOOP
        IF r.grantee = 0 OR NOT has_column_privilege(r.grantee, 'public.user_logins', 'masked_ip',
                                                     'UPDATE') THEN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION login_etl_count_rekeyed(bigint, bigint) '
                           'FROM %s',
                           CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.role) END);
        END IF;
    END LOOP;
END $$;
