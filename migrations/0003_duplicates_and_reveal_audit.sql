-- `login-etl report duplicates` groups by mask and counts distinct users/devices; with these two
-- indexes PostgreSQL answers from the index alone instead of sorting the table.
CREATE INDEX IF NOT EXISTS user_logins_device_users ON user_logins (masked_device_id, user_id);
CREATE INDEX IF NOT EXISTS user_logins_ip_users ON user_logins (masked_ip, user_id, masked_device_id);

-- One row per `login-etl reveal`: who, when, why, how the rows were chosen and which masks were
-- turned back into values. The values themselves are never stored.
CREATE TABLE IF NOT EXISTS mask_reveals (
    id          bigserial PRIMARY KEY,
    revealed_at timestamptz NOT NULL DEFAULT now(),
    os_user     text NOT NULL,
    actor       text NOT NULL,
    reason      text NOT NULL CHECK (length(trim(reason)) > 0),
    selector    text NOT NULL,
    masks       text[] NOT NULL,
    row_count   integer NOT NULL
);
