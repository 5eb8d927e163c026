-- `login-etl redrive` moves dead letters (raw messages, PII included) back to the source queue:
-- it is audited in `privacy_operations` like the other operator commands. Every operation
-- allowed before (migration 7) stays allowed.
ALTER TABLE privacy_operations DROP CONSTRAINT IF EXISTS privacy_operations_operation_check;
ALTER TABLE privacy_operations ADD CONSTRAINT privacy_operations_operation_check
    CHECK (operation IN ('erase', 'retention', 'rekey', 'quarantine_retention', 'audit_retention',
                         'redrive'));
