-- Every user a quarantine entry names. A message of several logins quarantined whole keeps all of
-- them in its scrubbed body, but `user_id` holds only the first; `user_ids` holds every `user_id`
-- value the body keeps, at any depth, as stored (the id, or `#str(n) k1:<fingerprint>` when it
-- looked like PII), and `user_id` too, so `erase` finds each of them by an index, never by reading
-- bodies. The writer fills it; older entries get it from their bodies here.
ALTER TABLE quarantined_messages ADD COLUMN IF NOT EXISTS user_ids text[];

-- One row at a time, so that a body that is not valid jsonb keeps only its `user_id` instead of
-- failing the migration.
DO $$
DECLARE
    entry record;
    body jsonb;
BEGIN
    FOR entry IN SELECT message_id, element, body_masked, user_id FROM quarantined_messages
                 WHERE user_ids IS NULL LOOP
        BEGIN
            body := replace(entry.body_masked, '\u0000', '\ufffd')::jsonb;
            UPDATE quarantined_messages
               SET user_ids = ARRAY(
                       SELECT DISTINCT id FROM (
                           SELECT replace(v #>> '{}', E'\ufffd', '\u{0}') AS id
                             FROM jsonb_path_query(body, 'lax $.**.user_id') AS v
                            WHERE jsonb_typeof(v) IN ('string', 'number')
                           UNION SELECT entry.user_id) AS ids
                        WHERE id IS NOT NULL)
             WHERE message_id = entry.message_id AND element = entry.element;
        EXCEPTION WHEN others THEN
            UPDATE quarantined_messages
               SET user_ids = CASE WHEN entry.user_id IS NULL THEN '{}'::text[]
                                   ELSE ARRAY[entry.user_id] END
             WHERE message_id = entry.message_id AND element = entry.element;
        END;
    END LOOP;
END
$$;

ALTER TABLE quarantined_messages ALTER COLUMN user_ids SET DEFAULT '{}';
CREATE INDEX IF NOT EXISTS quarantined_messages_user_ids ON quarantined_messages USING gin (user_ids);
