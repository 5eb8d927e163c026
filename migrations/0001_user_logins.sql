-- The take-home's table. It may already exist with `app_version integer`; versions such as "2.3.0"
-- cannot be integers, so the column becomes varchar(32), keeping any existing values as text.
CREATE TABLE IF NOT EXISTS user_logins (
    user_id          varchar(128),
    device_type      varchar(32),
    masked_ip        varchar(256),
    masked_device_id varchar(256),
    locale           varchar(32),
    app_version      varchar(32),
    create_date      date
);

DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema()
          AND table_name = 'user_logins'
          AND column_name = 'app_version'
          AND NOT (data_type = 'character varying' AND coalesce(character_maximum_length, 32) >= 32)
    ) THEN
        ALTER TABLE user_logins ALTER COLUMN app_version TYPE varchar(32) USING app_version::text;
    END IF;
END
$$;
