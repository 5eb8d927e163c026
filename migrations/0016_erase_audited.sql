-- `erase` changes the reveal audit only together with its own audit row. The function below is
-- the one way anyone but the owner can take an erased subject's masks and selectors out of
-- `mask_reveals`, and it writes the erase's `privacy_operations` row itself (stamped by the server
-- with `session_user` and `now()`), with the subjects' fingerprints and how many reveal rows it
-- changed. So an operator who records an erasure for a made-up fingerprint and neutralises
-- reveal rows with it leaves an audit row that names their database role and what they changed.
-- It replaces `login_etl_neutralise_reveals` (migration 15), which wrote no audit row.
DROP FUNCTION IF EXISTS login_etl_neutralise_reveals(text[], text[], text[]);
CREATE OR REPLACE FUNCTION login_etl_erase_audited(
    masks_ text[], selectors_ text[], subjects_ text[],
    os_user_ text, actor_ text, reason_ text, rows_ bigint, quarantined_ bigint, detail_ jsonb)
RETURNS TABLE (audit_id bigint, reveals bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    changed bigint;
    id_ bigint;
BEGIN
    -- Only inside an erase: every subject's record was written by this transaction.
    IF cardinality(subjects_) IS NULL OR cardinality(subjects_) = 0 OR EXISTS (
        SELECT 1 FROM unnest(subjects_) AS s
        WHERE NOT EXISTS (SELECT 1 FROM public.erased_subjects AS e
                          WHERE e.fingerprint = s AND e.erased_at = now())) THEN
        RAISE EXCEPTION 'login_etl_erase_audited runs only inside an erase of these subjects';
    END IF;
    IF rows_ < 0 OR quarantined_ < 0 THEN
        RAISE EXCEPTION 'an erase has a negative count';
    END IF;
    -- A mask a stored row still holds is someone's data: it stays in the audit.
    masks_ := ARRAY(SELECT m FROM unnest(masks_) AS m WHERE NOT EXISTS (
        SELECT 1 FROM public.user_logins AS l
        WHERE l.masked_ip = m OR l.masked_device_id = m OR l.masked_ip_network = m));
    UPDATE public.mask_reveals SET
        masks = ARRAY(SELECT m FROM unnest(masks) AS m WHERE m <> ALL(masks_)),
        selector = CASE WHEN selector = ANY(selectors_) OR subject = ANY(subjects_)
                        THEN 'erased subject' ELSE selector END,
        subject = CASE WHEN subject = ANY(subjects_) THEN NULL ELSE subject END
    WHERE masks && masks_ OR selector = ANY(selectors_) OR subject = ANY(subjects_);
    GET DIAGNOSTICS changed = ROW_COUNT;
    INSERT INTO public.privacy_operations (operation, os_user, actor, reason, rows, quarantined, detail)
    VALUES ('erase', os_user_, actor_, reason_, rows_, quarantined_,
            coalesce(detail_, '{}'::jsonb) || jsonb_build_object(
                'reveals_neutralised', changed, 'subjects', to_jsonb(subjects_)))
    RETURNING id INTO id_;
    RETURN QUERY SELECT id_, changed;
END $$;
REVOKE EXECUTE ON FUNCTION login_etl_erase_audited(text[], text[], text[], text, text, text, bigint, bigint, jsonb) FROM PUBLIC;
