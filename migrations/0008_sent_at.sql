-- When each login was sent: its envelope's timestamp (SNS `Timestamp`, EventBridge `time`) when it
-- came in one, else the SQS SentTimestamp. Nullable: rows written before this migration have
-- only `create_date`. On a partitioned table the column reaches every partition.
ALTER TABLE user_logins ADD COLUMN IF NOT EXISTS sent_at timestamptz;
