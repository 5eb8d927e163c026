-- Every SQS MessageId that has been committed, whatever its outcome. A redelivered message finds its
-- id here and is skipped, so it never produces a second row or a second quarantine entry.
CREATE TABLE IF NOT EXISTS processed_messages (
    message_id   text PRIMARY KEY,
    outcome      text NOT NULL CHECK (outcome IN ('row', 'quarantined')),
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- Messages that could not become rows, with a reason. `body_masked` is the JSON body with every
-- `ip` / `device_id` value replaced by its mask, or NULL when the body is not a JSON object (then we
-- cannot tell where PII might be, so nothing of it is kept).
CREATE TABLE IF NOT EXISTS quarantined_messages (
    message_id    text PRIMARY KEY,
    reason_code   text NOT NULL,
    reason        text NOT NULL,
    received_at   timestamptz NOT NULL,
    sent_at       timestamptz NOT NULL,
    receive_count integer NOT NULL,
    body_bytes    integer NOT NULL,
    body_masked   text
);

CREATE INDEX IF NOT EXISTS quarantined_messages_reason_code ON quarantined_messages (reason_code);
