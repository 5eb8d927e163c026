-- Solo attempts of suspect messages: a message delivered more than --max-receives times is
-- processed alone, and each such attempt is recorded here first, in its own committed
-- transaction. Only when the recorded solo attempts exceed the limit is the message itself to
-- blame (it kept killing or failing its consumer) and quarantined as `too_many_receives`; a
-- message whose earlier deliveries merely died with their consumer lands as a row. The row is
-- deleted in the transaction that commits the message. Ids only: never a body.
CREATE TABLE IF NOT EXISTS poison_attempts (
    message_id       text PRIMARY KEY,
    attempts         integer NOT NULL,
    first_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz NOT NULL DEFAULT now()
);
