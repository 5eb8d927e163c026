-- Privacy that fails closed. Quarantine entries carry what erasure and key reports need in their
-- own columns, so that no stored body (one with a `\u0000` escape, say) can make those statements
-- fail: `user_id` (control characters escaped) and `key_id` (the key of the body's masks).
-- `scrub_version` 1 marks bodies scrubbed by the allow-list rules of src/mask/scrub.rs; NULL marks
-- older ones, which masked only keys spelled `ip` / `device_id` (see docs/security.md).
ALTER TABLE quarantined_messages ADD COLUMN IF NOT EXISTS user_id text;
ALTER TABLE quarantined_messages ADD COLUMN IF NOT EXISTS key_id text;
ALTER TABLE quarantined_messages ADD COLUMN IF NOT EXISTS scrub_version smallint;
CREATE INDEX IF NOT EXISTS quarantined_messages_user_id ON quarantined_messages (user_id)
    WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS quarantined_messages_received_at ON quarantined_messages (received_at);

-- Older entries: read user_id and key_id out of the body, one row at a time, so that a body that
-- is not valid jsonb leaves those columns NULL instead of failing the migration.
DO $$
DECLARE
    entry record;
    body jsonb;
BEGIN
    FOR entry IN SELECT message_id, body_masked FROM quarantined_messages
                 WHERE scrub_version IS NULL AND body_masked IS NOT NULL AND user_id IS NULL LOOP
        BEGIN
            body := replace(entry.body_masked, '\u0000', '\ufffd')::jsonb;
            UPDATE quarantined_messages
               SET user_id = CASE WHEN jsonb_typeof(body -> 'user_id') = 'string'
                                  THEN replace(body ->> 'user_id', E'\ufffd', '\u{0}') END,
                   key_id = CASE WHEN (body ->> 'ip') LIKE '%:%' THEN split_part(body ->> 'ip', ':', 1) END
             WHERE message_id = entry.message_id;
        EXCEPTION WHEN others THEN
            NULL;
        END;
    END LOOP;
END
$$;

-- Audit rows say which database role acted, besides the OS user and the named actor. Reveals of
-- one user record a keyed fingerprint of the user id (`subject`), never the id.
ALTER TABLE mask_reveals ADD COLUMN IF NOT EXISTS db_user text NOT NULL DEFAULT session_user;
ALTER TABLE mask_reveals ADD COLUMN IF NOT EXISTS subject text;
ALTER TABLE privacy_operations ADD COLUMN IF NOT EXISTS db_user text NOT NULL DEFAULT session_user;
ALTER TABLE privacy_operations DROP CONSTRAINT IF EXISTS privacy_operations_operation_check;
ALTER TABLE privacy_operations ADD CONSTRAINT privacy_operations_operation_check
    CHECK (operation IN ('erase', 'retention', 'rekey', 'quarantine_retention', 'audit_retention'));
