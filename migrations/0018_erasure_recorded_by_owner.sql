-- An erasure is recorded only by the owner's function, and only with its audit row. Before, the
-- operator role wrote `erased_subjects` itself (so it could move an erasure's time back or forward
-- with no audit row) and handed `login_etl_erase_audited` the selectors to neutralise and the
-- audit row's detail. Now the function takes the subject and:
--   * deletes the subject's rows itself, so the audit row's `rows` is the server's count;
--   * writes the erasure records stamped `now()` (the writers check them; nobody else may write
--     or change them: the operator role keeps only SELECT);
--   * derives the selectors it neutralises from the subject and the masks (never free text);
--   * builds the audit row's detail itself, listing the ids of the reveal rows it changed, so an
--     erasure made up to hide someone's reveals names every row it touched and the role that did.
--   * stamps the records with the clock after its lock (not the transaction's start, which a
--     caller could hold open to date an erasure back), never moving a record's time back;
--   * requires the subject's fingerprints to be among the records, and lists every record with
--     its previous time in the audit row.
-- What stays the caller's word, said in docs/security.md: that the id, the fingerprints and the
-- masks belong together (only the operator holds the keys that make them), and the quarantine
-- counts.
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
REVOKE EXECUTE ON FUNCTION login_etl_erase_audited(text, text[], text[], text[], text, text, text, bigint, bigint) FROM PUBLIC;

-- A database upgraded from migration 17: whoever held EXECUTE on the old function gets it on the
-- new one, and nobody but the owner keeps a way to write erasure records directly (a revoke at
-- table level takes the column grants, `UPDATE (erased_at)`, with it).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT DISTINCT pg_get_userbyid(a.grantee) AS role
             FROM pg_proc AS p, aclexplode(p.proacl) AS a
             WHERE p.oid = to_regprocedure('login_etl_erase_audited(text[], text[], text[], text, '
                                           'text, text, bigint, bigint, jsonb)')
               AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner AND a.grantee <> 0 LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION login_etl_erase_audited(text, text[], text[], '
                       'text[], text, text, text, bigint, bigint) TO %I', r.role);
    END LOOP;
    FOR r IN SELECT DISTINCT pg_get_userbyid(a.grantee) AS role
             FROM pg_class AS c, aclexplode(c.relacl) AS a
             WHERE c.oid = 'public.erased_subjects'::regclass
               AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
               AND a.grantee <> c.relowner AND a.grantee <> 0
             UNION
             SELECT DISTINCT pg_get_userbyid(a.grantee)
             FROM pg_class AS c, pg_attribute AS t, aclexplode(t.attacl) AS a
             WHERE c.oid = 'public.erased_subjects'::regclass AND t.attrelid = c.oid
               AND a.privilege_type IN ('INSERT', 'UPDATE')
               AND a.grantee <> c.relowner AND a.grantee <> 0 LOOP
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.erased_subjects FROM %I',
                       r.role);
    END LOOP;
END $$;
DROP FUNCTION IF EXISTS login_etl_erase_audited(text[], text[], text[], text, text, text, bigint, bigint, jsonb);
