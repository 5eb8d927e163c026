-- The ledger is pruned of ids older than --ledger-retention-days (src/sink/postgres/prune.rs);
-- this index makes each small pruning batch find its oldest rows without a scan.
CREATE INDEX IF NOT EXISTS processed_messages_processed_at ON processed_messages (processed_at);
