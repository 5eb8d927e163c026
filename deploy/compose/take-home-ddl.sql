-- The take-home's original table, as its docker-compose creates it. login-etl migrates it on
-- start (app_version becomes text, keeping its values; see docs/schema.md).
CREATE TABLE IF NOT EXISTS user_logins(
    user_id             varchar(128),
    device_type         varchar(32),
    masked_ip           varchar(256),
    masked_device_id    varchar(256),
    locale              varchar(32),
    app_version         integer,
    create_date         date
);
