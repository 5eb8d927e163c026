-- Redrive: a dead letter sent back to the source queue is the message it was (it carries its
-- original id), so it updates its quarantine entry instead of adding one. `attempts` counts the
-- deliveries that were processed and still failed (1: the first), `last_attempt_at` the latest
-- of them; `resolved_at` is set when the entry's login finally landed as a row. The entry is kept
-- (with its reason) so `quarantine list` shows what was fixed and when.
ALTER TABLE quarantined_messages ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 1;
ALTER TABLE quarantined_messages ADD COLUMN IF NOT EXISTS last_attempt_at timestamptz;
ALTER TABLE quarantined_messages ADD COLUMN IF NOT EXISTS resolved_at timestamptz;
