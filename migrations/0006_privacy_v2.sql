-- Privacy v2: network pseudonyms (--ip-network-mask), and one audit table for the operations that
-- change or delete masked data (erase, retention, rekey): who, when, why, counts — never values.
ALTER TABLE user_logins ADD COLUMN IF NOT EXISTS masked_ip_network varchar(256);
CREATE INDEX IF NOT EXISTS user_logins_network_users
    ON user_logins (masked_ip_network, user_id) WHERE masked_ip_network IS NOT NULL;

CREATE TABLE IF NOT EXISTS privacy_operations (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    operation   text NOT NULL CHECK (operation IN ('erase', 'retention', 'rekey')),
    os_user     text NOT NULL,
    actor       text NOT NULL,
    reason      text NOT NULL,
    rows        bigint NOT NULL DEFAULT 0,
    quarantined bigint NOT NULL DEFAULT 0,
    detail      jsonb NOT NULL DEFAULT '{}'
);
