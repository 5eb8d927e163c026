-- An audit nobody can forge. Who acted in the database (`db_user`) and when (`revealed_at`, `at`)
-- are stamped by the server from `session_user` and `now()` on every INSERT, whatever the client
-- sent, and cannot be changed afterwards. Only the owner may UPDATE, DELETE or TRUNCATE the audit
-- tables: the two changes operators make to them go through the narrow functions below
-- (SECURITY DEFINER, owned by the schema owner, EXECUTE granted by docs/least-privilege-operator.sql).
CREATE OR REPLACE FUNCTION login_etl_stamp_reveal() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.db_user := session_user;
        NEW.revealed_at := now();
    ELSE
        NEW.db_user := OLD.db_user;
        NEW.revealed_at := OLD.revealed_at;
        NEW.os_user := OLD.os_user;
        NEW.actor := OLD.actor;
        NEW.reason := OLD.reason;
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS mask_reveals_stamped ON mask_reveals;
CREATE TRIGGER mask_reveals_stamped BEFORE INSERT OR UPDATE ON mask_reveals
    FOR EACH ROW EXECUTE FUNCTION login_etl_stamp_reveal();

CREATE OR REPLACE FUNCTION login_etl_stamp_operation() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.db_user := session_user;
        NEW.at := now();
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
DROP TRIGGER IF EXISTS privacy_operations_stamped ON privacy_operations;
CREATE TRIGGER privacy_operations_stamped BEFORE INSERT OR UPDATE ON privacy_operations
    FOR EACH ROW EXECUTE FUNCTION login_etl_stamp_operation();

REVOKE UPDATE, DELETE, TRUNCATE ON mask_reveals, privacy_operations FROM PUBLIC;

-- `erase`: take an erased subject's masks and selectors out of the reveal audit (the rule for
-- shared masks is the caller's: see src/sink/postgres/ops/erase.rs). Nothing else can change.
CREATE OR REPLACE FUNCTION login_etl_neutralise_reveals(masks_ text[], selectors_ text[], subjects_ text[])
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    changed bigint;
BEGIN
    -- Only inside an erase: every subject's record was written by this transaction.
    IF cardinality(subjects_) IS NULL OR cardinality(subjects_) = 0 OR EXISTS (
        SELECT 1 FROM unnest(subjects_) AS s
        WHERE NOT EXISTS (SELECT 1 FROM public.erased_subjects AS e
                          WHERE e.fingerprint = s AND e.erased_at = now())) THEN
        RAISE EXCEPTION 'login_etl_neutralise_reveals runs only inside an erase of these subjects';
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
    RETURN changed;
END $$;

-- `rekey`: count a committed batch in its run's audit row (rekey rows only; counts only grow).
CREATE OR REPLACE FUNCTION login_etl_count_rekeyed(id_ bigint, rows_ bigint)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF rows_ < 0 THEN
        RAISE EXCEPTION 'a re-keyed batch has a negative count';
    END IF;
    UPDATE public.privacy_operations SET rows = rows + rows_
    WHERE id = id_ AND operation = 'rekey' AND db_user = session_user;
END $$;
REVOKE EXECUTE ON FUNCTION login_etl_neutralise_reveals(text[], text[], text[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION login_etl_count_rekeyed(bigint, bigint) FROM PUBLIC;
