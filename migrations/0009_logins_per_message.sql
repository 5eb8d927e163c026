-- A message may hold several logins (a JSON array or NDJSON): each refused one is its own
-- quarantine entry, numbered by its index in the body (from 0); -1 marks an entry that stands
-- for the whole message. The ledger still has one entry per message.
ALTER TABLE quarantined_messages ADD COLUMN IF NOT EXISTS element integer NOT NULL DEFAULT -1;
ALTER TABLE quarantined_messages DROP CONSTRAINT IF EXISTS quarantined_messages_pkey;
ALTER TABLE quarantined_messages ADD PRIMARY KEY (message_id, element);
